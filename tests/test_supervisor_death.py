"""A logged metric is never lost, however a run ends: a supervisor SIGKILLed while its script logs (the
chaos test of issue 10), and a spool that runs out of disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.core.context import reap_if_orphaned
from runyard.core.processes import process_state
from runyard.pipeline import Pipeline, PythonScriptStep

LOG_UNTIL_STOPPED = """
import os, signal, time
from runyard import Run
run = Run.get_context()
logged = 0

def stop(*_):
    # Only calls that returned count as logged: the spool may hold one more line than this.
    open("outputs/logged", "w").write(str(logged))
    os._exit(0)

signal.signal(signal.SIGTERM, stop)
while logged < 2_000_000:
    run.log("v", logged, step=logged)
    logged += 1
    if logged == 5000:
        open("outputs/started", "w").write("")
    if logged % 500 == 0:
        time.sleep(0.001)  # two CPUs are shared by the whole test session
"""


def stored_values(run: Run) -> list[int]:
    series = run.get_metric_series("v").get("v", [])
    return sorted(int(v) for v in series)


def test_a_supervisor_killed_mid_log_loses_no_value(workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"train.py": LOG_UNTIL_STOPPED})
    run = Experiment(workspace, "chaos").submit(ScriptRunConfig(source_dir, "train.py"))
    outputs = workspace.artifacts.local_path(f"runs/{run.id}/outputs")
    wait_for(lambda: (outputs / "started").exists(), timeout=60)
    wait_for(lambda: "process" in run._refresh().data, timeout=10)
    supervisor = run._record.data["supervisor"]
    os.kill(int(supervisor["pid"]), signal.SIGKILL)
    wait_for(lambda: process_state(supervisor) == "dead", timeout=10)

    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert f"supervisor process (pid {supervisor['pid']}) stopped unexpectedly" in details["error"]["message"]
    logged = int((outputs / "logged").read_text())
    values = stored_values(run)
    # Every value the script logged is stored, exactly once; at most the one being logged when the
    # script was stopped is there too (it reached the spool before run.log returned).
    assert len(values) in (logged, logged + 1), (len(values), logged)
    assert values == list(range(len(values)))

    post = run.read_log("azureml-logs/75_job_post.txt").decode()
    assert "Process ended: orphaned" in post
    assert re.search(r"Metrics recovered from the spool[^\n]*: \d+", post)
    assert '"status": "Failed"' in run.read_log("azureml-logs/process_status.json").decode()
    assert not (workspace.work_dir / run.id).exists()
    assert not psutil.pid_exists(int(run._record.data["process"]["pid"])) or (
        psutil.Process(int(run._record.data["process"]["pid"])).status() == psutil.STATUS_ZOMBIE
    )


@pytest.fixture
def tiny_work_dir(sqlite_workspace: Workspace) -> Iterator[Path]:
    """The workspace's work folder (where each run's spool lives) on a 256 KiB tmpfs: a full disk for real."""
    work = sqlite_workspace.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(work)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield work
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


LOG_A_LOT = """
from runyard import Run
run = Run.get_context()
for i in range(20_000):
    run.log("v", i, step=i)
"""


def test_a_full_disk_while_spooling_says_so(
    sqlite_workspace: Workspace, source_dir: SourceDir, tiny_work_dir: Path
) -> None:
    source_dir.gen({"train.py": LOG_A_LOT})
    run = Experiment(sqlite_workspace, "full").submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion(raise_on_error=False)
    said = " ".join(
        [str((details.get("error") or {}).get("message", ""))]
        + [str(w.get("message")) for w in details.get("warnings", [])]
    )
    spool = tiny_work_dir / run.id / "spool"
    assert f"disk full while spooling metrics in {spool}" in said, details
    assert "supervisor stopped unexpectedly" not in said
    values = stored_values(run)
    assert values == list(range(len(values)))  # what was logged before the disk filled up is all there
    assert details["status"] == "Completed", details  # the script carried on without its spool
    assert len(values) == 20_000
    assert not (tiny_work_dir / run.id).exists()


LOG_THEN_WAIT = """
import time
from runyard import Run
run = Run.get_context()
for i in range(3000):
    run.log("v", i, step=i)
open("outputs/started", "w").write("")
time.sleep(120)
"""


def test_two_readers_reaping_one_orphan_store_each_value_once(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_METRIC_FLUSH_SECONDS", "60")  # every value is only in the spool
    source_dir.gen({"train.py": LOG_THEN_WAIT})
    run = Experiment(sqlite_workspace, "chaos").submit(ScriptRunConfig(source_dir, "train.py"))
    outputs = sqlite_workspace.artifacts.local_path(f"runs/{run.id}/outputs")
    wait_for(lambda: (outputs / "started").exists(), timeout=60)
    supervisor = run._refresh().data["supervisor"]
    os.kill(int(supervisor["pid"]), signal.SIGKILL)
    wait_for(lambda: process_state(supervisor) == "dead", timeout=10)

    results: list[bool] = []
    readers = [
        threading.Thread(target=lambda: results.append(reap_if_orphaned(Run.get(sqlite_workspace, run.id))))
        for _ in range(2)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)
    assert sorted(results) == [False, True]
    assert run.get_status() == "Failed"
    assert stored_values(run) == list(range(3000))


@pytest.mark.usefixtures("no_stray_processes")
def test_canceling_a_pipeline_whose_scheduler_died_keeps_its_steps_metrics(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_METRIC_FLUSH_SECONDS", "60")  # every value is only in the spool
    source_dir.gen({"train.py": LOG_THEN_WAIT})
    step = PythonScriptStep("train.py", name="logger", source_directory=source_dir, allow_reuse=False)
    run = Pipeline(sqlite_workspace, [step]).submit("pipe-orphan", show_output=False)
    step_run = wait_for(lambda: run.find_step_run("logger")[0], timeout=10)
    outputs = sqlite_workspace.artifacts.local_path(f"runs/{step_run.id}/outputs")
    wait_for(lambda: (outputs / "started").exists(), timeout=60)
    scheduler = int(json.loads((sqlite_workspace.path / "scheduler.json").read_text())["pid"])
    os.kill(scheduler, signal.SIGKILL)
    wait_for(lambda: process_state(run._refresh().data["supervisor"]) == "dead", timeout=10)

    run.cancel()
    assert run.get_status() == "Canceled"
    assert step_run.get_status() == "Canceled"
    assert stored_values(step_run) == list(range(3000))
    assert "Metrics recovered from the spool" in step_run.read_log("azureml-logs/75_job_post.txt").decode()
