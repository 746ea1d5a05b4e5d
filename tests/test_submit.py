"""experiment.submit(ScriptRunConfig(...)): real supervisor and script processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.errors import ComputeTargetException, InvalidInputError
from runyard.status import ACTIVE_STATUSES, RunStatus

LOG_FILES = {
    "azureml-logs/65_job_prep.txt",
    "azureml-logs/70_driver_log.txt",
    "azureml-logs/75_job_post.txt",
    "azureml-logs/process_info.json",
    "azureml-logs/process_status.json",
}


def submit(
    workspace: Workspace,
    source_dir: SourceDir,
    script: str = "train.py",
    arguments: list[object] | None = None,
    experiment: str = "submit-tests",
    tags: dict[str, str] | None = None,
) -> Run:
    exp = Experiment(workspace, experiment)
    return exp.submit(ScriptRunConfig(source_dir, script, arguments=arguments), tags=tags)


def driver_log(run: Run) -> str:
    return run.read_log().decode("utf-8", errors="replace")


def test_submit_returns_at_once_and_the_script_gets_its_arguments(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_dir.gen(
        {
            "train.py": """
                import json, os, sys, time
                from runyard import Run
                run = Run.get_context()
                barrier = os.environ["TEST_BARRIER"]
                deadline = time.monotonic() + 30
                while not os.path.exists(barrier) and time.monotonic() < deadline:
                    time.sleep(0.02)
                print("ARGS " + json.dumps(sys.argv[1:]))
                print("RUN " + run.id + " " + run.experiment.name)
            """
        }
    )
    barrier = tmp_path / "barrier"
    monkeypatch.setenv("TEST_BARRIER", str(barrier))  # the supervisor passes its environment on
    try:
        started = time.monotonic()
        run = submit(workspace, source_dir, arguments=["--alpha", 0.5, "--name", "two words", "--n", 3])
        # The script cannot end before the barrier opens, so a submit that waited for it would be stuck.
        assert time.monotonic() - started < 15
        assert run.status in ACTIVE_STATUSES
        assert run.get_status() in ACTIVE_STATUSES
    finally:
        barrier.touch()
    assert run.type == "azureml.scriptrun"
    assert run.id.startswith("submit-tests_")
    details = run.wait_for_completion()
    assert details["status"] == "Completed"
    log = driver_log(run)
    assert 'ARGS ["--alpha", "0.5", "--name", "two words", "--n", "3"]' in log
    assert f"RUN {run.id} submit-tests" in log  # Run.get_context() is this run
    assert details["runDefinition"]["arguments"] == ["--alpha", "0.5", "--name", "two words", "--n", "3"]
    assert details["runDefinition"]["script"] == "train.py"
    assert _utc(details["endTimeUtc"]) >= _utc(details["startTimeUtc"])


def _utc(value: str) -> str:
    assert value.endswith("Z")
    return value


def test_submit_with_tags(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": "print('hi')\n"})
    run = submit(workspace, source_dir, tags={"team": "vision", "try": "3"})
    assert run.get_tags() == {"team": "vision", "try": "3"}
    run.wait_for_completion()
    assert [r.id for r in Experiment(workspace, "submit-tests").get_runs(tags={"team": "vision"})] == [run.id]


def test_script_runs_in_a_copy_of_the_source_directory(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                import os, time
                time.sleep(1.0)
                print("CWD " + os.getcwd())
                print("DATA " + open("data/config.txt").read())
                print("VERSION original")
                open("written_by_script.txt", "w").write("x")
            """,
            "data/config.txt": "original-config",
        }
    )
    run = submit(workspace, source_dir)
    # Edit the source folder while the run is starting: the run must not see the edits.
    (source_dir.path / "train.py").write_text("print('VERSION edited')\n")
    (source_dir.path / "data" / "config.txt").write_text("edited-config")
    run.wait_for_completion()
    log = driver_log(run)
    assert "VERSION original" in log and "edited" not in log
    assert "DATA original-config" in log
    cwd = next(line[4:] for line in log.splitlines() if line.startswith("CWD "))
    assert Path(cwd).resolve() != source_dir.path.resolve()
    assert not (source_dir.path / "written_by_script.txt").exists()
    # The working copy is cleaned up when the run ends.
    assert not Path(cwd).exists()


def test_outputs_and_logs_folders_are_kept_with_the_run(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path
) -> None:
    source_dir.gen(
        {
            "train.py": """
                import os
                os.makedirs("outputs/sub", exist_ok=True)
                with open("outputs/model.txt", "w") as f:
                    f.write("weights")
                with open("outputs/sub/deep.bin", "wb") as f:
                    f.write(bytes(range(256)))
                os.makedirs("logs", exist_ok=True)
                with open("logs/train.log", "w") as f:
                    f.write("epoch 1 done")
            """
        }
    )
    run = submit(workspace, source_dir)
    run.wait_for_completion()
    names = run.get_file_names()
    assert {"outputs/model.txt", "outputs/sub/deep.bin", "logs/train.log"} <= set(names)
    assert Path(run.download_file("outputs/model.txt", tmp_path / "m.txt")).read_text() == "weights"
    assert Path(run.download_file("outputs/sub/deep.bin", tmp_path)).read_bytes() == bytes(range(256))
    assert Path(run.download_file("logs/train.log", tmp_path)).read_text() == "epoch 1 done"
    assert "logs/train.log" in run.get_details()["logFiles"]
    assert "epoch 1 done" in run.get_details_with_logs()["logFiles"]["logs/train.log"]
    post = run.read_log("azureml-logs/75_job_post.txt").decode()
    assert "Kept 2 files in outputs/" in post


def test_log_folder_has_real_content(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                import sys
                for i in range(5):
                    print(f"out {i}", flush=True)
                    print(f"err {i}", file=sys.stderr, flush=True)
            """
        }
    )
    run = submit(workspace, source_dir, arguments=["--lr", "0.1"])
    details = run.wait_for_completion()
    assert set(run.get_file_names()) >= LOG_FILES
    assert set(details["logFiles"]) >= LOG_FILES

    prep = run.read_log("azureml-logs/65_job_prep.txt").decode()
    assert run.id in prep
    assert "Command:" in prep and "train.py --lr 0.1" in prep

    lines = [line for line in driver_log(run).splitlines() if line.startswith(("out ", "err "))]
    assert lines == [f"{kind} {i}" for i in range(5) for kind in ("out", "err")]  # interleaved in order

    post = run.read_log("azureml-logs/75_job_post.txt").decode()
    assert "exit code 0" in post

    info = json.loads(run.read_log("azureml-logs/process_info.json"))
    proc = info["processes"][0]
    assert proc["command"][-3:] == ["train.py", "--lr", "0.1"]
    assert isinstance(proc["pid"], int) and proc["pid"] > 0
    assert proc["logFile"] == "azureml-logs/70_driver_log.txt"

    status = json.loads(run.read_log("azureml-logs/process_status.json"))
    assert status["processes"][0]["exitCode"] == 0
    assert status["processes"][0]["status"] == "Completed"

    with_logs = run.get_details_with_logs()["logFiles"]
    assert "out 4" in with_logs["azureml-logs/70_driver_log.txt"]


def test_metrics_logged_by_the_script(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                from runyard import Run
                run = Run.get_context()
                run.log("lr", 0.01)
                for i in range(100):
                    run.log("loss", 1.0 / (i + 1))
                run.log("epochs", 100)
                run.log("converged", True)
                run.log_list("accs", [0.5, 0.75])
                run.log_row("table", epoch=1, acc=0.5)
                run.log_row("table", epoch=2, acc=0.75)
                run.tag("phase", "trained")
                run.add_properties({"dataset": "digits-v1"})
            """
        }
    )
    run = submit(workspace, source_dir)
    run.wait_for_completion()
    metrics = run.get_metrics()
    assert metrics["lr"] == 0.01
    assert metrics["loss"] == [1.0 / (i + 1) for i in range(100)]
    assert metrics["epochs"] == 100 and type(metrics["epochs"]) is int
    assert metrics["converged"] is True
    assert metrics["accs"] == [0.5, 0.75]
    assert metrics["table"] == {"epoch": [1, 2], "acc": [0.5, 0.75]}
    assert run.get_tags()["phase"] == "trained"
    assert run.get_properties()["dataset"] == "digits-v1"
    # The store's running summary agrees with the rows.
    summary = {s.name: s for s in workspace.store.get_metric_summaries([run.id])}
    assert summary["loss"].count == 100
    assert summary["loss"].max == 1.0 and summary["loss"].min == pytest.approx(0.01)


def test_wait_for_completion_show_output_streams_the_log(
    workspace: Workspace, source_dir: SourceDir, capsys: pytest.CaptureFixture[str]
) -> None:
    source_dir.gen(
        {
            "train.py": """
                import time
                for i in range(4):
                    print(f"streamed line {i}")
                    time.sleep(0.2)
                print("héllo ✓")
            """
        }
    )
    run = submit(workspace, source_dir)
    details = run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert details["status"] == "Completed"
    assert f"RunId: {run.id}" in out
    assert "Streaming azureml-logs/70_driver_log.txt" in out
    positions = [out.index(f"streamed line {i}") for i in range(4)]
    assert positions == sorted(positions)
    assert "héllo ✓" in out
    summary = out.index("Execution Summary")
    assert summary > positions[-1]
    assert "Status: Completed" in out[summary:]


def test_cancel_stops_a_sleeping_script(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                import time
                print("started", flush=True)
                time.sleep(60)
                print("finished", flush=True)
            """
        }
    )
    run = submit(workspace, source_dir)
    wait_for(lambda: run.get_status() == RunStatus.RUNNING and "started" in driver_log(run), timeout=30)
    pid = json.loads(run.read_log("azureml-logs/process_info.json"))["processes"][0]["pid"]
    running = run.get_details()
    assert running["status"] == "Running" and "endTimeUtc" not in running
    assert "azureml-logs/70_driver_log.txt" in running["logFiles"]
    began = time.monotonic()
    run.cancel()
    details = run.wait_for_completion()
    assert "endTimeUtc" in details
    assert details["status"] == "Canceled"
    assert time.monotonic() - began < 15
    assert "finished" not in driver_log(run)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    status = json.loads(run.read_log("azureml-logs/process_status.json"))
    assert status["processes"][0]["status"] == "Canceled"
    run.cancel()  # canceling an ended run is a no-op
    assert run.get_status() == "Canceled"


def test_cancel_kills_a_script_that_ignores_sigterm(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                import signal, time
                signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
                print("started", flush=True)
                for _ in range(600):
                    time.sleep(0.1)
                print("finished", flush=True)
            """
        }
    )
    run = submit(workspace, source_dir)
    wait_for(lambda: "started" in driver_log(run), timeout=30)
    began = time.monotonic()
    run.cancel()
    assert run.wait_for_completion()["status"] == "Canceled"
    assert time.monotonic() - began < 20  # SIGKILL after RUNYARD_CANCEL_GRACE_SECONDS=2, not never
    log = driver_log(run)
    assert "ignoring SIGTERM" in log and "finished" not in log


def test_cancel_right_after_submit(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": "import time\nprint('started', flush=True)\ntime.sleep(60)\n"})
    run = submit(workspace, source_dir)
    run.cancel()
    began = time.monotonic()
    assert run.wait_for_completion()["status"] == "Canceled"
    assert time.monotonic() - began < 15
    # The supervisor wraps up even though the run was canceled before it got going.
    wait_for(lambda: "azureml-logs/75_job_post.txt" in run.get_file_names(), timeout=15)


def test_amlignore_is_honoured_over_gitignore(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": """
                import os
                found = sorted(
                    os.path.relpath(os.path.join(root, name), ".")
                    for root, dirs, names in os.walk(".")
                    for name in names
                )
                print("FILES " + ",".join(found))
            """,
            ".amlignore": "data/\n*.ckpt\n",
            ".gitignore": "notes.txt\n",
            "data/big.bin": b"\x00" * 1000,
            "model.ckpt": "x",
            "notes.txt": "kept: .gitignore is not read when .amlignore exists",
            "keep/me.py": "",
            ".git/HEAD": "ref: refs/heads/main",
            "__pycache__/x.pyc": b"\x00",
        }
    )
    run = submit(workspace, source_dir)
    run.wait_for_completion()
    files = set(next(ln[6:] for ln in driver_log(run).splitlines() if ln.startswith("FILES ")).split(","))
    assert {"train.py", ".amlignore", ".gitignore", "notes.txt", "keep/me.py"} <= files
    assert not any(f.startswith(("data/", ".git/", "__pycache__/")) for f in files), files
    assert "model.ckpt" not in files


def test_gitignore_is_used_without_amlignore(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "train.py": "import os\nprint('SECRET', os.path.exists('secret.txt'), os.path.exists('cache'))\n",
            ".gitignore": "secret.txt\ncache/\n",
            "secret.txt": "s3cret",
            "cache/blob": "b",
        }
    )
    run = submit(workspace, source_dir)
    run.wait_for_completion()
    assert "SECRET False False" in driver_log(run)


def test_script_outside_source_directory_is_refused(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path
) -> None:
    source_dir.gen({"train.py": "print('x')\n"})
    (tmp_path / "x.py").write_text("print('outside')\n")
    exp = Experiment(workspace, "refused")
    with pytest.raises(InvalidInputError, match="outside the source directory"):
        exp.submit(ScriptRunConfig(source_dir, "../x.py"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        exp.submit(ScriptRunConfig(source_dir, "missing.py"))
    with pytest.raises(InvalidInputError, match="not a folder"):
        exp.submit(ScriptRunConfig(tmp_path / "no-such-dir", "train.py"))
    assert list(exp.get_runs()) == []  # nothing was recorded for refused submissions


def test_submit_refuses_things_it_cannot_run(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": "print('x')\n"})
    exp = Experiment(workspace, "refused")
    with pytest.raises(InvalidInputError, match="ScriptRunConfig"):
        exp.submit("train.py")  # type: ignore[arg-type]
    with pytest.raises(
        ComputeTargetException, match=r"no compute target 'gpu-cluster'.*ComputeTarget.create"
    ):
        exp.submit(ScriptRunConfig(source_dir, "train.py", compute_target="gpu-cluster"))
    with pytest.raises(InvalidInputError):
        ScriptRunConfig(source_dir)
    assert list(exp.get_runs()) == []


def test_long_experiment_name_still_gives_a_valid_run_id(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": "print('ok')\n"})
    name = "e" * 255
    with pytest.warns(UserWarning, match="3-36"):
        exp = Experiment(workspace, name)
    run = exp.submit(ScriptRunConfig(source_dir, "train.py"))
    assert len(run.id.encode()) <= 255 and run.id.startswith("e" * 200)
    assert run.wait_for_completion()["status"] == "Completed"


def test_script_in_a_subfolder_runs_from_the_source_root(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen(
        {
            "scripts/train.py": """
                import os
                import helper
                print("HELPER", helper.VALUE)
                print("ROOT FILE", open("config.txt").read())
            """,
            "scripts/helper.py": "VALUE = 42\n",
            "config.txt": "at-the-root",
        }
    )
    run = submit(workspace, source_dir, script="scripts/train.py")
    run.wait_for_completion()
    log = driver_log(run)
    assert "HELPER 42" in log and "ROOT FILE at-the-root" in log


def test_max_run_duration_stops_the_script(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": "import time\nprint('started', flush=True)\ntime.sleep(60)\n"})
    exp = Experiment(workspace, "timeouts")
    began = time.monotonic()
    run = exp.submit(ScriptRunConfig(source_dir, "train.py", max_run_duration_seconds=1))
    details = run.wait_for_completion(raise_on_error=False)
    assert time.monotonic() - began < 30
    assert details["status"] == "Failed"
    assert "max_run_duration_seconds=1" in details["error"]["message"]
    assert "started" in details["error"]["message"]
