"""A script run whose supervisor dies must not stay Running forever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace

SLEEPER = """
import os, time
open("outputs/pid", "w").write(str(os.getpid()))
print("sleeping", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_killed_supervisor_fails_the_run_and_stops_the_script(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"sleep.py": SLEEPER})
    run = Experiment(sqlite_workspace, "orphans").submit(ScriptRunConfig(source_dir, "sleep.py"))
    wait_for(lambda: run.get_status() == "Running" and "process" in run._record.data, timeout=60)
    supervisor = int(run._record.data["supervisor"]["pid"])
    script = int(run._record.data["process"]["pid"])
    os.kill(supervisor, signal.SIGKILL)

    started = time.monotonic()
    details = run.wait_for_completion(raise_on_error=False)
    assert time.monotonic() - started < 30
    assert details["status"] == "Failed"
    assert f"supervisor process (pid {supervisor}) stopped unexpectedly" in details["error"]["message"]
    wait_for(lambda: not _alive(script), timeout=10)
    assert "sleeping" in run.get_details_with_logs()["logFiles"]["azureml-logs/70_driver_log.txt"]


def test_cancel_with_a_dead_supervisor_still_cancels(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"sleep.py": SLEEPER})
    run = Experiment(sqlite_workspace, "orphans").submit(ScriptRunConfig(source_dir, "sleep.py"))
    wait_for(lambda: run.get_status() == "Running" and "process" in run._record.data, timeout=60)
    script = int(run._record.data["process"]["pid"])
    os.kill(int(run._record.data["supervisor"]["pid"]), signal.SIGKILL)
    wait_for(lambda: not _alive(int(run._record.data["supervisor"]["pid"])), timeout=10)

    run.cancel()
    assert run.get_status() == "Canceled"
    wait_for(lambda: not _alive(script), timeout=10)


def test_a_supervisor_that_dies_before_it_records_anything_is_noticed(
    sqlite_workspace: Workspace, source_dir: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python runs sitecustomize in every child before any runyard code: this one makes the supervisor
    # exit at once, as one would whose database refuses it ("too many clients") or whose venv is broken.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if b'runyard.compute.supervisor' in open('/proc/self/cmdline', 'rb').read():\n"
        "    os._exit(7)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hook))
    source_dir.gen({"ok.py": "print('never runs')"})
    run = Experiment(sqlite_workspace, "orphans").submit(ScriptRunConfig(source_dir, "ok.py"))

    started = time.monotonic()
    details = run.wait_for_completion(raise_on_error=False)
    assert time.monotonic() - started < 30
    assert details["status"] == "Failed"
    assert "supervisor process" in details["error"]["message"]
    assert "60_control_log.txt" in details["error"]["message"]
