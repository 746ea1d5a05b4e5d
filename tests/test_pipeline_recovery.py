"""The scheduler service killed with SIGKILL mid-pipeline, then started again.

A restarted scheduler must find every run the dead one was responsible for: completed steps stay
completed, the step that was running is marked Failed with the reason, the pipeline goes on (or
ends), and no run stays Running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Workspace
from runyard.engine.service import SchedulerService, ensure_running, service_info
from runyard.errors import ConflictError
from runyard.pipeline import Pipeline, PipelineRun, PythonScriptStep, StepRun
from runyard.status import ACTIVE_STATUSES, RunStatus

pytestmark = pytest.mark.usefixtures("no_stray_processes")

SCRIPT = """
    import sys, time
    print("started", flush=True)
    time.sleep(float(sys.argv[1]))
    print("done")
"""


def make_step(tmp_path: Path, name: str, seconds: float) -> PythonScriptStep:
    src = SourceDir(tmp_path / "steps" / name).gen({"step.py": SCRIPT})
    return PythonScriptStep(
        "step.py", name=name, arguments=[seconds], source_directory=src, allow_reuse=False
    )


def step_run(run: PipelineRun, name: str) -> StepRun:
    return run.find_step_run(name)[0]


def statuses(run: PipelineRun) -> dict[str, str]:
    return {
        r.display_name or "": r.status for r in run.workspace.store.list_descendants(run.id, recursive=False)
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def scheduler_processes(ws: Workspace) -> list[int]:
    """Live `python -m runyard.engine <ws>` processes (a zombie's cmdline reads empty)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if b"runyard.engine" in argv and str(ws.path).encode() in argv:
            found.append(int(proc.name))
    return found


def kill_scheduler(ws: Workspace, reap: bool = True) -> int:
    """SIGKILL the workspace's scheduler service and wait until the kernel has released its lock.

    This test process started it (submit → ensure_running), so unless it is reaped here the dead
    scheduler lingers as a zombie whose pid still answers kill(pid, 0)."""
    # two quick submits may each have started a service; the one that lost the lock must be gone first
    wait_for(lambda: len(scheduler_processes(ws)) == 1, timeout=20)
    pid = int(json.loads((ws.path / "scheduler.json").read_text())["pid"])
    assert scheduler_processes(ws) == [pid]
    os.kill(pid, signal.SIGKILL)
    if reap:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    wait_for(lambda: service_info(ws) is None, timeout=10)
    return pid


def wait_running(run: PipelineRun, name: str) -> StepRun:
    def started() -> StepRun | None:
        found = run.find_step_run(name)
        if found and found[0]._refresh().status == RunStatus.RUNNING and "started" in found[0].get_job_log():
            return found[0]
        return None

    return wait_for(started, timeout=30)


def test_sigkill_mid_pipeline_then_restart_fails_the_interrupted_step_only(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "4")
    ws = sqlite_workspace
    first, middle, last = (
        make_step(tmp_path, "first", 0),
        make_step(tmp_path, "middle", 60),
        make_step(tmp_path, "last", 0),
    )
    middle.run_after(first)
    last.run_after(middle)
    run = Pipeline(ws, [first, middle, last]).submit("recovery", show_output=False)
    other = Pipeline(ws, [make_step(tmp_path, "other", 60)]).submit("recovery-2", show_output=False)
    middle_run = wait_running(run, "middle")
    wait_running(other, "other")
    step_pid = int(middle_run._record.data["process"]["pid"])
    first_before = step_run(run, "first")._record
    assert first_before.status == RunStatus.COMPLETED

    old = kill_scheduler(ws)
    time.sleep(0.3)
    # nobody is left to record anything: the store still says Running
    assert statuses(run) == {"first": "Completed", "middle": "Running", "last": "NotStarted"}
    assert run.get_status() == "Running"
    assert alive(step_pid)  # the step process outlived its scheduler

    assert ensure_running(ws) is True
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=60) == "Failed"
    assert statuses(run) == {"first": "Completed", "middle": "Failed", "last": "Canceled"}
    first_after = step_run(run, "first")._record
    assert (first_after.start_time, first_after.end_time) == (first_before.start_time, first_before.end_time)
    error = step_run(run, "middle")._record.data["error"]
    assert "scheduler stopped while this step was running" in error["message"]
    assert error["code"] == "SystemError"
    assert "started" in error["message"]  # the log tail is kept in the reason
    assert (
        step_run(run, "last")._record.data["error"]["message"]
        == "Not run: upstream step 'middle' ended Failed."
    )
    wait_for(lambda: not alive(step_pid), timeout=10)  # the orphaned step process was stopped
    assert "done" not in step_run(run, "middle").get_job_log()
    # the other pipeline the dead scheduler was running is found and ended too
    assert other.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=30) == "Failed"
    assert statuses(other) == {"other": "Failed"}
    assert not any(r.status in ACTIVE_STATUSES for r in ws.store.list_runs())
    new = json.loads((ws.path / "scheduler.json").read_text())["pid"]
    assert new != old
    log = (ws.path / "scheduler.log").read_text()
    assert f"step middle ({middle_run.id}): interrupted by a scheduler restart; marked Failed" in log


def test_after_a_restart_an_independent_branch_still_runs_with_continue_on_step_failure(
    sqlite_workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """a → b (long) → d, and a → c. One slot: c waits Queued behind b when the scheduler dies."""
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "1")
    ws = sqlite_workspace
    a, b, c, d = (make_step(tmp_path, n, s) for n, s in [("a", 0), ("b", 60), ("c", 0), ("d", 0)])
    b.run_after(a)
    c.run_after(a)
    d.run_after(b)
    run = Pipeline(ws, [a, b, c, d]).submit("recovery", continue_on_step_failure=True, show_output=False)
    wait_running(run, "b")
    wait_for(lambda: statuses(run)["c"] == RunStatus.QUEUED, timeout=10)
    kill_scheduler(ws)
    killed_at = time.time()
    # wait_for_completion notices that no scheduler holds the lock and starts one
    status = run.wait_for_completion(show_output=True, raise_on_error=False, timeout_seconds=60)
    assert status == "Failed"
    assert statuses(run) == {"a": "Completed", "b": "Failed", "c": "Completed", "d": "Canceled"}
    c_run = step_run(run, "c")
    assert c_run._record.start_time > killed_at  # type: ignore[operator]
    assert "started" in c_run.get_job_log()
    assert "scheduler" in step_run(run, "b")._record.data["error"]["message"]
    assert not any(r.status in ACTIVE_STATUSES for r in ws.store.list_runs())
    out = capsys.readouterr().out
    assert "[c] started" in out
    assert f"PipelineRun {run.id} Status: Failed" in out


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_canceling_a_pipeline_whose_scheduler_died_stops_its_steps(
    sqlite_workspace: Workspace, tmp_path: Path, reap: bool
) -> None:
    """Reaped: cancel() sees no live scheduler and ends the steps itself. Zombie: the dead scheduler's
    pid still looks alive, so cancel() records a request and starts a scheduler, whose recovery stops them."""
    ws = sqlite_workspace
    first, long = make_step(tmp_path, "first", 0), make_step(tmp_path, "long", 60)
    long.run_after(first)
    run = Pipeline(ws, [first, long]).submit("recovery", show_output=False)
    step_pid = int(wait_running(run, "long")._record.data["process"]["pid"])
    kill_scheduler(ws, reap=reap)
    run.cancel()
    assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Canceled"
    wait_for(lambda: statuses(run) == {"first": "Completed", "long": "Canceled"}, timeout=15)
    wait_for(lambda: not alive(step_pid), timeout=10)
    assert not any(r.status in ACTIVE_STATUSES for r in ws.store.list_runs())


def test_one_scheduler_per_workspace(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    run = Pipeline(ws, [make_step(tmp_path, "s", 2)]).submit("recovery", show_output=False)
    info = wait_for(lambda: (service_info(ws) or {}).get("pid") and service_info(ws), timeout=10)
    assert ensure_running(ws) is False  # the lock is held: no second service
    with pytest.raises(ConflictError, match=f"already runs for workspace .*pid {info['pid']}"):
        SchedulerService(ws, idle_seconds=1).serve()
    assert run.wait_for_completion(show_output=False) == "Finished"


def test_looking_at_pipelines_restarts_a_killed_scheduler(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    from conftest import invoke_cli

    ws = sqlite_workspace
    run = Pipeline(ws, [make_step(tmp_path, "slow", 60)]).submit("look", show_output=False)
    wait_running(run, "slow")
    kill_scheduler(ws)
    time.sleep(0.3)
    assert service_info(ws) is None

    listed = invoke_cli("-w", str(ws.path), "pipeline", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    # Nobody waits on the run; the listing alone brought a scheduler back, which recovers it.
    wait_for(lambda: run._refresh().status in ("Failed", "Canceled", "Completed"), timeout=60)
    assert statuses(run) == {"slow": "Failed"}
