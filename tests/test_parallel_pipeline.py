"""ParallelRunSteps end to end: real pipelines (runyard.pipeline.Pipeline, Experiment.submit), a real
scheduler process, the real driver and worker processes, files on the workspace's datastore.

One SQLite workspace serves the module (each test uses its own data and step names, so reuse and
checkpoints never cross tests); its scheduler stays up between tests. Inputs are tens of files, and the
entry scripts are tiny, so the module stays well under a minute.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import SourceDir, insert_pipeline, invoke_cli, kill_strays, wait_for
from parallel_helpers import (
    GATED,
    MAKE,
    PREDICT,
    SCORE_FILES,
    SCORE_ROWS,
    files_dataset,
    run_processes,
    table_dataset,
)
from runyard import Experiment, Workspace
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.core.model import Model
from runyard.core.snapshot import snapshot_files
from runyard.engine.service_lock import ensure_running
from runyard.engine.step_parallel import checkpoint_key, parallel_material
from runyard.environments.environment import Environment
from runyard.parallel import ParallelRunConfig, ParallelRunStep
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
)
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store.snapshots import SnapshotStore


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace for the module, its scheduler kept up between tests and stopped at the end, with
    every process still working under the module's folder."""
    root = tmp_path_factory.mktemp("prs")
    saved = {k: os.environ.get(k) for k in ("RUNYARD_SCHEDULER_IDLE_SECONDS",)}
    os.environ["RUNYARD_SCHEDULER_IDLE_SECONDS"] = "60"
    workspace = Workspace.create(root / "ws" / ".runyard")
    yield workspace
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    kill_strays(root)


@pytest.fixture(autouse=True)
def _scheduler_stays(monkeypatch: pytest.MonkeyPatch, env_cache: Path) -> None:
    """conftest's _clean_env drops RUNYARD_* for each test: the module's scheduler settings come back."""
    monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "60")


def environment() -> Environment:
    env = Environment("prs-as-is")
    env.python.user_managed_dependencies = True  # the test's interpreter: nothing to build
    return env


def prs_config(source: SourceDir, script: str, **settings: Any) -> ParallelRunConfig:
    values: dict[str, Any] = {
        "mini_batch_size": "2",
        "error_threshold": -1,
        "output_action": "append_row",
        "process_count_per_node": 1,
        "run_invocation_timeout": 30,
        **settings,
    }
    return ParallelRunConfig(
        environment=environment(),
        entry_script=script,
        **{"compute_target": "local", "node_count": 1, **values},
        source_directory=str(source),
    )


def scoring_step(name: str, config: ParallelRunConfig, data: Any, **more: Any) -> ParallelRunStep:
    """A ParallelRunStep over one input, its append_row output named "scores" (what output_lines reads)."""
    return ParallelRunStep(
        name=name,
        parallel_run_config=config,
        inputs=[data],
        output=OutputFileDatasetConfig("scores"),
        **more,
    )


def submit(ws: Workspace, steps: list[Any], **parameters: Any) -> PipelineRun:
    run = Experiment(ws, "prs").submit(Pipeline(ws, steps), pipeline_parameters=parameters or None)
    assert isinstance(run, PipelineRun)
    return run


def finish(run: PipelineRun, expect: str = "Finished") -> PipelineRun:
    status = run.wait_for_completion(show_output=False, timeout_seconds=90, raise_on_error=False)
    assert status == expect, [(s.name, s.get_details().get("error")) for s in run.get_steps()]
    return run


def step_of(run: PipelineRun, name: str) -> Any:
    return run.find_step_run(name)[0]


def output_lines(step_run: Any, output: str = "scores") -> list[str]:
    folder = Path(step_run.get_output_data(output).local_path)
    return (folder / "parallel_run_step.txt").read_text().splitlines()


def processed(ws: Workspace, step_run: Any) -> list[dict[str, str]]:
    report = ws.artifacts.local_path(f"runs/{step_run.id}/logs/sys/job_report/processed_mini-batches.csv")
    with open(report, newline="") as fh:
        return list(csv.DictReader(fh))


def reuse_reason(run: PipelineRun, step: str) -> tuple[bool, str]:
    row = next(r for r in run.get_reuse_report() if r["step"] == step)
    return bool(row["reused"]), str(row["reason"])


def test_file_dataset_append_row_reuse_and_parameters(ws: Workspace, tmp_path: Path) -> None:
    """A FileDataset in mini-batches of a PipelineParameter size; the output holds one line per file. A
    resubmit is reused, also with more workers; another mini_batch_size reruns and says why."""
    contents = {f"item-{i:02d}.txt": f"value-{i}" for i in range(12)}
    images = files_dataset(ws, tmp_path, "prs-files", contents)
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})
    batch = PipelineParameter("batch", default_value="2")
    workers = PipelineParameter("workers", default_value=1)
    config = prs_config(source, "score.py", mini_batch_size=batch, process_count_per_node=workers)
    step = scoring_step("score-files", config, images.as_named_input("images"), arguments=["--delay", "0"])
    first = finish(submit(ws, [step]))
    scored = step_of(first, "score-files")
    assert sorted(output_lines(scored)) == sorted(f"{n} {v}" for n, v in contents.items())
    rows = processed(ws, scored)
    assert len(rows) == 6 and {r["Status"] for r in rows} == {"RUN_DONE"}
    progress = json.loads(scored.read_log("logs/sys/progress.json"))  # what the CLI and studio read
    assert progress["state"] == "completed" and progress["items"] == {
        "total": 12,
        "succeeded": 12,
        "failed": 0,
    }
    assert not (ws.path / "parallel").exists() or not any((ws.path / "parallel").iterdir())

    more_workers = finish(submit(ws, [step], workers=2))
    assert reuse_reason(more_workers, "score-files")[0] is True

    bigger = finish(submit(ws, [step], batch="5"))
    reused, reason = reuse_reason(bigger, "score-files")
    assert not reused and "mini_batch_size 2 → 5" in reason
    assert len(processed(ws, step_of(bigger, "score-files"))) == 3


def test_tabular_dataset_in_1kb_mini_batches(ws: Workspace, tmp_path: Path) -> None:
    """A TabularDataset (two CSV files of ~2 KB) with mini_batch_size '1KB': several mini-batches, none
    across a file boundary, and every row once in the output. As Microsoft's samples do, it runs on an
    AmlCompute cluster with node_count=2: runyard runs that target on this machine, as one node, and
    says so once at submit."""
    first = [(i, i, 1000 + i) for i in range(150)]
    second = [(i, i, 2000 + i) for i in range(150, 300)]
    table = table_dataset(ws, tmp_path, "prs-table", {"part-0.csv": first, "part-1.csv": second})
    source = SourceDir(tmp_path / "rows").gen({"rows.py": SCORE_ROWS})
    cluster = ComputeTarget.create(ws, "prs-cluster", AmlCompute.provisioning_configuration(max_nodes=2))
    step = scoring_step(
        "score-rows",
        prs_config(
            source,
            "rows.py",
            mini_batch_size="1KB",
            process_count_per_node=2,
            compute_target=cluster,
            node_count=2,
        ),
        table.as_named_input("table"),
    )
    with pytest.warns(UserWarning, match=r"node_count=2 runs as one node on this machine") as seen:
        run = submit(ws, [step])
    assert len([w for w in seen if "node_count" in str(w.message)]) == 1
    scored = step_of(finish(run), "score-rows")
    expected = sorted(f"{i} {a + b}" for i, a, b in first + second)
    assert sorted(output_lines(scored)) == expected
    rows = processed(ws, scored)
    assert len(rows) >= 4 and sum(int(r["Items"]) for r in rows) == 300
    assert {r["Status"] for r in rows} == {"RUN_DONE"}


def progress_of(step_run: Any) -> dict[str, Any]:
    text = step_run.read_log("logs/sys/progress.json")
    try:
        return dict(json.loads(text)) if text else {}
    except ValueError:
        return {}


def running_step(run: PipelineRun, name: str) -> Any:
    def found() -> Any:
        steps = run.find_step_run(name)
        return steps[0] if steps and steps[0]._record.data.get("process") else None

    return wait_for(found)


def gated_step(ws: Workspace, tmp_path: Path, name: str, files: int) -> tuple[Any, dict[str, str], Path]:
    """A step over `files` files in mini-batches of one whose first two run at once, the rest when the
    returned gate file exists."""
    contents = {f"{name}-{i:02d}.txt": f"v{i}" for i in range(files)}
    data = files_dataset(ws, tmp_path, f"prs-{name}", contents)
    source = SourceDir(tmp_path / "gated").gen({"gated.py": GATED})
    gate = tmp_path / "gate"
    step = scoring_step(
        f"score-{name}",
        prs_config(source, "gated.py", mini_batch_size="1"),
        data.as_named_input("data"),
        arguments=["--gate", str(gate), "--free", ",".join(sorted(contents)[:2])],
    )
    return step, contents, gate


def test_sigkill_of_the_driver_then_resubmit_resumes(ws: Workspace, tmp_path: Path) -> None:
    """The driver is SIGKILLed after two mini-batches: the step fails, its workers go too, and the
    resubmitted pipeline runs only the remaining mini-batches; the output holds each row once."""
    step, contents, gate = gated_step(ws, tmp_path, "kill", 10)
    killed = submit(ws, [step])
    victim = running_step(killed, "score-kill")
    wait_for(lambda: (progress_of(victim).get("mini_batches") or {}).get("completed", 0) == 2)
    os.kill(int(victim._record.data["process"]["pid"]), signal.SIGKILL)
    finish(killed, "Failed")
    assert run_processes(victim.id) == []  # the workers did not outlive their driver
    checkpoint = Path(victim._record.data["parallelCheckpoint"])
    assert checkpoint.parent == ws.path / "parallel" and checkpoint.stat().st_mode & 0o777 == 0o700

    gate.touch()
    scored = step_of(finish(submit(ws, [step])), "score-kill")
    assert scored._record.data["parallelCheckpoint"] == str(checkpoint) and not checkpoint.exists()
    assert sorted(output_lines(scored)) == sorted(f"{n} {v}" for n, v in contents.items())
    assert progress_of(scored)["mini_batches"]["resumed"] == 2
    assert len(processed(ws, scored)) == 8  # only the remaining ones ran
    extra = Path(scored.get_output_data("scores").local_path) / "extra"  # the killed run's files came along
    assert sorted(p.name for p in extra.iterdir()) == sorted(f"{n}.done" for n in contents)


def test_error_threshold_exceeded_fails_the_step_with_one_sentence(ws: Workspace, tmp_path: Path) -> None:
    contents = {f"f-{i:02d}.txt": ("bad" if i in (2, 5, 7) else f"ok{i}") for i in range(10)}
    data = files_dataset(ws, tmp_path, "prs-budget", contents)
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})
    config = prs_config(source, "score.py", mini_batch_size="1", error_threshold=2, run_max_try=1)
    step = scoring_step("score-budget", config, data.as_named_input("data"))
    failed = step_of(finish(submit(ws, [step]), "Failed"), "score-budget")
    error = failed.get_details()["error"]["message"]
    first = error.splitlines()[0]
    assert first.startswith("ParallelRunStep failed:") and "error_threshold 2" in first, error
    shown = invoke_cli("runs", "show", failed.id, cwd=ws.path.parent)
    assert shown.returncode == 0, shown.stderr
    assert "ParallelRunStep failed:" in shown.stdout
    assert "cannot score f-02.txt" in failed.read_log("logs/user/error.txt").decode()


def test_upstream_output_side_input_and_a_registered_model_in_init(ws: Workspace, tmp_path: Path) -> None:
    """The partitioned input is another step's output (a local folder: source "path"); a side input
    reaches every worker as a path through the arguments; init() loads a registered model with
    Model.get_model_path, through the azureml namespace as v1 code does."""
    (tmp_path / "factor.txt").write_text("7")
    Model.register(ws, str(tmp_path / "factor.txt"), "prs-factor")
    labels = files_dataset(ws, tmp_path, "prs-labels", {"unit.txt": "kg"})
    source = SourceDir(tmp_path / "model").gen({"predict.py": PREDICT})
    maker = SourceDir(tmp_path / "make").gen({"make.py": MAKE})
    numbers = OutputFileDatasetConfig("numbers")
    make = PythonScriptStep("make.py", name="make", arguments=[numbers], source_directory=maker)
    side = labels.as_named_input("labels").as_mount()
    predict = scoring_step(
        "predict",
        prs_config(source, "predict.py"),
        numbers.as_input("numbers"),
        side_inputs=[side],
        arguments=["--labels", side],
    )
    scored = step_of(finish(submit(ws, [make, predict])), "predict")
    assert sorted(output_lines(scored)) == sorted(f"n{i}.txt {i * 7}kg" for i in range(5))


def test_cancel_stops_the_driver_and_its_workers(ws: Workspace, tmp_path: Path) -> None:
    data = files_dataset(ws, tmp_path, "prs-cancel", {f"c{i}.txt": "x" for i in range(8)})
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})
    step = scoring_step(
        "score-cancel",
        prs_config(source, "score.py", mini_batch_size="1", process_count_per_node=2),
        data.as_named_input("data"),
        arguments=["--delay", "5"],
    )
    run = submit(ws, [step])
    started = running_step(run, "score-cancel")
    wait_for(lambda: len(run_processes(started.id)) >= 3)  # the driver and two workers
    run.cancel()
    finish(run, "Canceled")
    assert run_processes(started.id) == []


def test_a_bad_parameter_value_in_a_stored_record_fails_the_step_without_a_process(
    ws: Workspace, tmp_path: Path
) -> None:
    """submit() refuses mini_batch_size='ten'; a record written some other way (the REST API) reaches the
    scheduler, which fails the step with the setting's message and starts nothing."""
    data = files_dataset(ws, tmp_path, "prs-param", {"a.txt": "x"})
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})
    batch = PipelineParameter("batch", default_value="2")
    step = scoring_step(
        "bad-batch", prs_config(source, "score.py", mini_batch_size=batch), data.as_named_input("data")
    )
    graph = Pipeline(ws, [step]).graph
    snap = SnapshotStore(ws.artifacts).save(source.path, snapshot_files(source.path))
    graph["steps"][0]["source"].update(snapshot=snap.id, files=len(snap.files))
    step_id = str(uuid.uuid4())
    data = {"graph": graph, "parameters": {"batch": "ten"}, "stepRuns": {"bad-batch": step_id}}
    insert_pipeline(ws, data, ["bad-batch"], {"bad-batch": step_id})
    ensure_running(ws)
    record = wait_for(lambda: (r := ws.store.get_run(step_id)).status in TERMINAL_STATUSES and r, 30)
    assert record.status == RunStatus.FAILED and "process" not in record.data
    error = record.data["error"]
    assert error["code"] == "InvalidParallelSetting"
    assert error["message"].startswith("ParallelRunStep 'bad-batch': mini_batch_size 'ten' does not parse")


def test_the_same_work_submitted_twice_runs_once(ws: Workspace, tmp_path: Path) -> None:
    """Two drivers never share a checkpoint: the second submission's step waits for the first, then
    reuses its result."""
    data = files_dataset(ws, tmp_path, "prs-twice", {f"t{i}.txt": str(i) for i in range(4)})
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})
    step = scoring_step(
        "score-twice",
        prs_config(source, "score.py"),
        data.as_named_input("data"),
        arguments=["--delay", "0.5"],
    )
    first, second = submit(ws, [step]), submit(ws, [step])
    finish(first)
    finish(second)
    ran, waited = step_of(first, "score-twice"), step_of(second, "score-twice")
    if waited._record.data.get("reusedFrom") is None:  # the scheduler picked the second one up first
        ran, waited = waited, ran
    assert waited._record.data["reusedFrom"] == ran.id
    assert "is doing the same work" in waited._record.data["queuedBecause"]
    assert len(processed(ws, ran)) == 2


def test_a_scheduler_restart_stops_the_driver_and_a_resubmit_resumes(ws: Workspace, tmp_path: Path) -> None:
    """The scheduler dies (SIGKILL) while a driver works; the next scheduler stops the orphaned driver
    and its workers and fails the step (engine/recovery.py); a resubmit continues the checkpoint."""
    step, contents, gate = gated_step(ws, tmp_path, "restart", 6)
    run = submit(ws, [step])
    victim = running_step(run, "score-restart")
    wait_for(lambda: (progress_of(victim).get("mini_batches") or {}).get("completed", 0) == 2)
    scheduler = psutil.Process(json.loads((ws.path / "scheduler.json").read_text())["pid"])
    scheduler.kill()
    scheduler.wait(10)
    assert run_processes(victim.id)  # the driver outlives its scheduler ...
    ensure_running(ws)
    finish(run, "Failed")
    assert run_processes(victim.id) == []  # ... until the next one recovers the step
    assert "The scheduler stopped while this step was running" in victim.get_details()["error"]["message"]

    gate.touch()
    resumed = step_of(finish(submit(ws, [step])), "score-restart")
    assert sorted(output_lines(resumed)) == sorted(f"{n} {v}" for n, v in contents.items())
    assert progress_of(resumed)["mini_batches"]["resumed"] == 2
    assert len(processed(ws, resumed)) == 4


def test_what_reruns_and_what_resumes(ws: Workspace, tmp_path: Path) -> None:
    """Reuse ignores the scheduling-only settings; the checkpoint also ignores thresholds and timeouts
    (a rerun with a bigger error budget resumes); a new partitioning is other work."""
    data = files_dataset(ws, tmp_path, "prs-keys", {"k.txt": "k"})
    source = SourceDir(tmp_path / "score").gen({"score.py": SCORE_FILES})

    def material(threshold: int, **params: Any) -> dict[str, Any]:
        batch, workers = (
            PipelineParameter("batch", default_value="2"),
            PipelineParameter("workers", default_value=1),
        )
        config = prs_config(
            source,
            "score.py",
            mini_batch_size=batch,
            process_count_per_node=workers,
            error_threshold=threshold,
        )
        step = scoring_step("keys", config, data.as_named_input("d"))
        graph_step = Pipeline(ws, [step]).graph["steps"][0]
        values = {"batch": "2", "workers": 1, **params}
        return {"inputs": {"d": "same"}, "parallel": parallel_material(graph_step, values)}

    base = material(5)
    assert material(5, workers=4) == base  # same fingerprint: reused
    assert material(9) != base and checkpoint_key(material(9)) == checkpoint_key(base)  # reruns, resumes
    assert checkpoint_key(material(5, batch="3")) != checkpoint_key(base)  # other mini-batches
