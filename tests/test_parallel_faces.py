"""How a ParallelRunStep's progress reaches people: wait_for_completion's output (plain lines when
captured, a Rich bar on a terminal), `runyard pipeline show`'s progress column and `runyard runs show`.

The progress file is written by the driver's own writer (runyard.parallel.joblogs.JobLogs) into the logs
folder of a real step run in a real workspace; the waits and the commands are the real ones, in-process
(typer's CliRunner: a subprocess would cost a second or two of imports each)."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SourceDir
from runyard import Experiment, Workspace
from runyard.cli.main import app
from runyard.core.run_files import DRIVER_LOG
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.data.dataset import Dataset
from runyard.environments.environment import Environment
from runyard.parallel import ParallelRunConfig, ParallelRunStep
from runyard.parallel.joblogs import JobLogs
from runyard.parallel.progress import Failure, ProgressSnapshot
from runyard.pipeline import Pipeline, PipelineRun
from runyard.pipeline.runs import StepRun
from runyard.pipeline.wait_output import short
from runyard.store import RunRecord

PARALLEL = {"kind": "file", "inputs": ["images"], "output_action": "summary_only", "error_threshold": 10}


def _graph() -> dict:
    step = {"inputs": [], "outputs": [], "run_after": []}
    return {"steps": [{"name": "prep", **step}, {"name": "score", **step, "parallel": PARALLEL}]}


def make_pipeline(ws: Workspace, status: str = "Running") -> tuple[PipelineRun, StepRun]:
    """A pipeline run whose second step is a ParallelRunStep, both as the scheduler records them."""
    exp = ws.store.get_or_create_experiment("batch")
    now = time.time()
    common = {"experiment_id": exp.id, "experiment_name": exp.name, "created_time": now, "start_time": now}
    pipe = ws.store.create_run(
        RunRecord(
            run_id=f"pipe_{now:.6f}".replace(".", "_"),
            status=status,
            run_type=PIPELINE_RUN_TYPE,
            data={"graph": _graph(), "parameters": {}},
            **common,  # type: ignore[arg-type]
        )
    )
    for name, step_status in (("prep", "Completed"), ("score", status)):
        ws.store.create_run(
            RunRecord(
                run_id=f"{pipe.run_id}_{name}",
                status=step_status,
                run_type=STEP_RUN_TYPE,
                parent_id=pipe.run_id,
                display_name=name,
                end_time=now if step_status == "Completed" else None,
                **common,  # type: ignore[arg-type]
            )
        )
    run = PipelineRun.get(ws, pipe.run_id)
    step = run.find_step_run("score")[0]
    return run, step


def snapshot(
    done: int, failed: int = 0, total: int = 200, state: str = "running", failures: int = 0
) -> ProgressSnapshot:
    now = time.time()
    return ProgressSnapshot.model_validate(
        {
            "state": state,
            "step": "score",
            "started": now - 65,
            "updated": now,
            "mini_batches": {"total": total, "scheduled": done + failed, "completed": done, "failed": failed},
            "items": {"total": total * 10, "succeeded": done * 10, "failed": failed * 10},
            "items_per_second": 1234.4,
            "eta_seconds": 42.0 if state == "running" else None,
            "workers": 2,
            "failures": [
                Failure(
                    mini_batch=i,
                    input="images",
                    message=f"ValueError: bad image {i}",
                    log=f"logs/user/error/0/process00{1 + i % 2}.txt",
                ).model_dump()
                for i in range(failures)
            ],
        }
    )


def job_logs(ws: Workspace, step: StepRun) -> JobLogs:
    """The driver's writers on the step run's logs folder (where the scheduler links the job's ./logs)."""
    return JobLogs(ws.artifacts.local_path(f"runs/{step.id}/logs"), node="0")


def driver_log(ws: Workspace, step: StepRun, line: str) -> None:
    path = ws.artifacts.local_path(f"runs/{step.id}/{DRIVER_LOG}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


@contextmanager
def in_background(*steps: tuple[float, Callable[[], object]]) -> Iterator[threading.Thread]:
    """Run each action at its time (seconds from now) in a thread, as the driver and scheduler would."""
    start = time.monotonic()

    def play() -> None:
        for at, action in steps:
            time.sleep(max(0.0, start + at - time.monotonic()))
            action()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    yield thread
    thread.join(timeout=10)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws" / ".runyard")


def test_a_table_cell_says_done_of_total_failures_speed_and_eta() -> None:
    assert short(snapshot(117, 3)) == "120/200 · 3 failed · 1,234 items/s · ETA 0:42"
    assert short(snapshot(200, state="completed")) == "200/200 · completed in 1:05"


def test_step_wait_prints_a_plain_progress_line_at_most_every_10_s_and_a_final_line(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    _, step = make_pipeline(ws)
    logs = job_logs(ws, step)
    logs.progress(snapshot(117, 3))
    driver_log(ws, step, "driver: 200 mini-batches planned")

    def finish() -> None:
        logs.result(snapshot(197, 3, state="completed"), "Completed", "3 mini-batches failed.")
        driver_log(ws, step, "ParallelRunStep completed: 1,970 of 2,000 items succeeded.")
        ws.store.set_run_status(step.id, "Completed")

    with in_background((0.7, lambda: logs.progress(snapshot(150, 3))), (1.4, finish)):
        assert step.wait_for_completion(show_output=True, timeout_seconds=30) == "Finished"
    out = capsys.readouterr().out

    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("[score] Progress:")]
    assert progress == [
        "[score] Progress: 120/200 mini-batches, 3 failed, 30 items failed, 1,234 items/s, ETA 0:00:42"
    ]
    final = "[score] ParallelRunStep: 200/200 mini-batches, 3 failed, 30 items failed, completed in 0:01:05"
    assert final in lines
    assert lines.index("driver: 200 mini-batches planned") < lines.index(progress[0])
    assert "\x1b[" not in out  # no terminal codes in captured output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("no_stray_processes")
def test_pipeline_wait_on_a_terminal_draws_a_bar_with_logs_above_it_and_ends_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, step = make_pipeline(ws)
    logs = job_logs(ws, step)
    logs.progress(snapshot(117, 3))
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)

    def finish() -> None:
        logs.result(snapshot(197, 3, state="completed"), "Completed", "3 mini-batches failed.")
        ws.store.set_run_status(step.id, "Completed")
        ws.store.set_run_status(run.id, "Completed")

    # the whole wait stays under 2 s, so it never asks for a scheduler for this hand-made run
    with in_background((0.5, lambda: driver_log(ws, step, "scoring batch 7")), (0.9, finish)):
        assert run.wait_for_completion(show_output=True, timeout_seconds=30) == "Finished"
    out = screen.getvalue()

    assert "━" in out and "120/200" in out and "1,234 items/s" in out and "ETA 0:42" in out  # the bar
    assert "[score] scoring batch 7\n" in out  # a log line printed above the bar, whole
    final = "[score] ParallelRunStep: 200/200 mini-batches, 3 failed, 30 items failed, completed in 0:01:05"
    assert out.index(final) < out.index("PipelineRun Execution Summary")
    assert "\x1b[?25h" in out  # the cursor is shown again: the bar has ended


def cli(ws: Workspace, *args: str) -> str:
    # a wide terminal, whatever the one running the tests is (COLUMNS): rows must not wrap mid-sentence
    from runyard.cli import render

    saved = (render.console._width, render.err_console._width)
    render.console.width = render.err_console.width = 200
    try:
        result = CliRunner().invoke(app, ["-w", str(ws.path), *args])
    finally:
        render.console._width, render.err_console._width = saved
    assert result.exit_code == 0, result.output
    return result.output


def test_pipeline_show_has_a_progress_column_and_runs_show_lists_failed_mini_batches(
    workspace: Workspace,
) -> None:
    run, step = make_pipeline(workspace, status="Failed")
    logs = job_logs(workspace, step)
    logs.result(snapshot(150, 12, state="failed", failures=12), "Failed", "See logs/user/error.txt.")

    table = cli(workspace, "pipeline", "show", run.id)
    assert "Progress" in table
    assert "162/200 · 12 failed · failed in 1:05" in table
    row_of_prep = next(line for line in table.splitlines() if "prep" in line)
    assert "/200" not in row_of_prep  # only the parallel step has progress
    assert "━" not in row_of_prep
    bar_row = next(line for line in table.splitlines() if step.id in line)
    assert "━━━━━━━━━━" in bar_row  # a Rich bar of the mini-batches done, above the summary line

    shown = cli(workspace, "runs", "show", step.id)
    assert "Parallel run: 162/200 mini-batches, 12 failed, 120 items failed, failed in 0:01:05" in shown
    assert "Failed mini-batches" in shown
    assert "ValueError: bad image 9" in shown and "logs/user/error/0/process002.txt" in shown
    assert "bad image 10" not in shown  # the first 10 only, and where the rest are
    assert "… and 2 more failed mini-batches: logs/user/error.txt lists them all." in shown

    details = json.loads(cli(workspace, "runs", "show", step.id, "--json"))
    assert details["parallelProgress"]["mini_batches"]["failed"] == 12
    assert len(details["parallelProgress"]["failures"]) == 12


SCORE = """
    import os

    def init():
        pass

    def run(mini_batch):
        for path in mini_batch:
            if open(path).read() == "bad":
                raise ValueError(f"cannot score {os.path.basename(path)}")
        return [os.path.basename(path) for path in mini_batch]
"""


@pytest.mark.usefixtures("no_stray_processes")
def test_a_real_parallel_run_step_reports_through_the_wait_and_runs_show(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: the scheduler, the driver and a worker write what the faces read."""
    folder = tmp_path / "items"
    folder.mkdir()
    for i in range(8):
        (folder / f"item-{i}.txt").write_text("bad" if i == 5 else "ok")
    store = ws.get_default_datastore()
    store.upload(str(folder), target_path="items", overwrite=True, show_progress=False)
    items = Dataset.File.from_files((store, "items"))
    env = Environment("as-is")
    env.python.user_managed_dependencies = True  # the test's interpreter: nothing to build
    config = ParallelRunConfig(
        entry_script="score.py",
        mini_batch_size="2",
        error_threshold=-1,
        output_action="summary_only",
        environment=env,
        compute_target="local",
        node_count=1,
        source_directory=str(SourceDir(tmp_path / "src").gen({"score.py": SCORE})),
        run_max_try=1,
    )
    step = ParallelRunStep(name="score", parallel_run_config=config, inputs=[items.as_named_input("items")])
    run = Experiment(ws, "faces").submit(Pipeline(ws, [step]))
    assert isinstance(run, PipelineRun)

    assert run.wait_for_completion(show_output=True, timeout_seconds=120) == "Finished"
    out = capsys.readouterr().out
    assert "[score] ParallelRunStep: 4/4 mini-batches, 1 failed, 2 items failed, completed in" in out

    scored = run.find_step_run("score")[0]
    shown = cli(ws, "runs", "show", scored.id)
    assert "Parallel run: 4/4 mini-batches, 1 failed" in shown
    failed = next(line for line in shown.splitlines() if "cannot score item-5.txt" in line)
    log = next(word for word in failed.split() if word.startswith("logs/user/error/"))
    assert "ValueError: cannot score item-5.txt" in scored.read_log(log).decode()  # the traceback is there
