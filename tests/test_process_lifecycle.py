"""No process outlives its run: forked and setsid children are stopped, a reused pid never keeps a dead run
Running, and a killed interactive run does not make wait_for_completion() wait forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.compute.process_job import stop_process_group
from runyard.core.context import reap_if_orphaned
from runyard.core.processes import identity, process_state
from runyard.errors import InvalidInputError
from runyard.pipeline import Pipeline, PythonScriptStep

DRIVER_LOG = "azureml-logs/70_driver_log.txt"
POST = "azureml-logs/75_job_post.txt"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    """A live process that has nothing to do with any run."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_reused_pid_counts_as_dead(sqlite_workspace: Workspace, sleeper: subprocess.Popen[bytes]) -> None:
    recorded = identity(sleeper.pid)
    assert process_state(recorded) == "alive"
    # The record's process started at another time than the live process that now has its pid.
    reused = {**recorded, "createTime": recorded["createTime"] - 3600}
    assert process_state(reused) == "dead"

    run = Experiment(sqlite_workspace, "pids").start_logging()
    sqlite_workspace.store.update_run_data(run.id, {"supervisor": reused})
    assert reap_if_orphaned(run)
    assert run.get_status() == "Failed"
    assert f"pid {sleeper.pid}" in run.get_details()["error"]["message"]
    assert alive(sleeper.pid)  # the unrelated process was not touched


def test_stop_process_group_returns_only_when_every_descendant_is_gone(tmp_path: Path) -> None:
    # The leader exits on SIGTERM at once; its children ignore SIGTERM, and one of them left the group.
    code = textwrap.dedent(
        """
        import subprocess, sys, time
        stubborn = (
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], 'w').close(); time.sleep(60)"
        )
        a = subprocess.Popen([sys.executable, "-c", stubborn, sys.argv[1] + ".a"])
        b = subprocess.Popen([sys.executable, "-c", stubborn, sys.argv[1] + ".b"], start_new_session=True)
        open(sys.argv[1], "w").write(f"{a.pid} {b.pid}")
        time.sleep(60)
        """
    )
    pids = tmp_path / "pids"
    leader = subprocess.Popen([sys.executable, "-c", code, str(pids)], start_new_session=True)
    wait_for(lambda: all(Path(f"{pids}{end}").exists() for end in ("", ".a", ".b")), timeout=30)
    children = [int(p) for p in pids.read_text().split()]
    stop_process_group(leader, grace=0.5)
    assert leader.returncode == -signal.SIGTERM
    assert [pid for pid in children if alive(pid)] == []


GRANDCHILDREN = """
import os, subprocess, sys, time
tick = "import time\\nwhile True:\\n    print('tick', flush=True)\\n    time.sleep(0.02)\\n"
if os.fork() == 0:  # a daemon-style double fork: the grandchild is reparented away from the script
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", tick])
    os._exit(0)
os.wait()
away = subprocess.Popen([sys.executable, "-c", tick], start_new_session=True)  # left the group
open("outputs/pids", "w").write(str(away.pid))
time.sleep(0.5)
print("script done", flush=True)
"""


def test_children_a_finished_script_left_behind_do_not_outlive_the_run(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": GRANDCHILDREN})
    run = Experiment(sqlite_workspace, "leftovers").submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details
    assert POST in run.get_file_names()
    size = len(run.read_log(DRIVER_LOG))
    time.sleep(0.5)
    assert len(run.read_log(DRIVER_LOG)) == size, "something of the run still writes to its driver log"
    assert run.read_log(DRIVER_LOG).count(b"tick") > 0  # they did run
    away = int(sqlite_workspace.artifacts.local_path(f"runs/{run.id}/outputs/pids").read_text())
    assert not alive(away)
    leftovers = [
        p.pid for p in psutil.process_iter() if p.pid != os.getpid() and run.id in _environ(p).values()
    ]
    assert leftovers == []


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:
        return {}


SETSID_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
open("outputs/child", "w").write(str(child.pid))
time.sleep(120)
"""


def test_cancel_stops_a_child_that_left_the_process_group(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": SETSID_CHILD})
    run = Experiment(sqlite_workspace, "cancel").submit(ScriptRunConfig(source_dir, "train.py"))
    pid_file = sqlite_workspace.artifacts.local_path(f"runs/{run.id}/outputs/child")
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60)
    child = int(pid_file.read_text())
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert not alive(child)


def test_cancel_of_an_orphaned_run_stops_a_child_that_left_the_group(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"train.py": SETSID_CHILD})
    run = Experiment(sqlite_workspace, "cancel").submit(ScriptRunConfig(source_dir, "train.py"))
    pid_file = sqlite_workspace.artifacts.local_path(f"runs/{run.id}/outputs/child")
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60)
    wait_for(lambda: "process" in run._refresh().data, timeout=10)
    os.kill(int(run._record.data["supervisor"]["pid"]), signal.SIGKILL)
    wait_for(lambda: process_state(run._record.data["supervisor"]) == "dead", timeout=10)
    run.cancel()
    assert run.get_status() == "Canceled"
    assert not alive(int(pid_file.read_text()))
    assert not alive(int(run._record.data["process"]["pid"]))
    assert POST in run.get_file_names()


OWNER = """
import sys, time
from runyard import Experiment, Workspace
exp = Experiment(Workspace.get(sys.argv[1]), "interactive")
run = exp.start_logging()
child = run.child_run("part")
run.log("loss", 0.5)
child.log("loss", 0.25)
run.flush()
print(run.id, child.id, flush=True)
time.sleep(120)
"""


def _start_owner(workspace: Workspace) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(workspace.path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()


def _killed_owner_fails(workspace: Workspace, proc: subprocess.Popen[str], run_id: str) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = Run.get(workspace, run_id)
    details: list[dict[str, object]] = []
    waiter = threading.Thread(
        target=lambda: details.append(run.wait_for_completion(raise_on_error=False)), daemon=True
    )
    waiter.start()
    waiter.join(timeout=15)
    assert details, "wait_for_completion() still waits on a run whose process was killed"
    assert details[0]["status"] == "Failed"
    message = str(details[0]["error"])
    assert f"pid {proc.pid}" in message
    assert "ended without completing it" in message


def test_a_killed_child_run_owner_does_not_leave_it_running(sqlite_workspace: Workspace) -> None:
    proc, (_, child_id) = _start_owner(sqlite_workspace)
    _killed_owner_fails(sqlite_workspace, proc, child_id)
    assert Run.get(sqlite_workspace, child_id).get_metrics() == {"loss": 0.25}


def test_reading_the_status_of_a_run_whose_owner_was_killed_ends_it(sqlite_workspace: Workspace) -> None:
    proc, (_, child_id) = _start_owner(sqlite_workspace)
    proc.kill()
    proc.wait()
    assert Run.get(sqlite_workspace, child_id).get_status() == "Failed"


def test_a_killed_interactive_run_does_not_wait_forever(sqlite_workspace: Workspace) -> None:
    proc, (run_id, _) = _start_owner(sqlite_workspace)
    if "owner" not in sqlite_workspace.store.get_run(run_id).data:
        proc.kill()
        proc.wait()
        pytest.skip("Experiment.start_logging does not record its owner yet (core/experiment.py)")
    _killed_owner_fails(sqlite_workspace, proc, run_id)


def test_a_live_owner_keeps_its_run_running(sqlite_workspace: Workspace) -> None:
    proc, (_, child_id) = _start_owner(sqlite_workspace)
    try:
        assert not reap_if_orphaned(Run.get(sqlite_workspace, child_id))
        assert Run.get(sqlite_workspace, child_id).get_status() == "Running"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("key", [None, "", 3])
def test_tag_names_must_be_strings(sqlite_workspace: Workspace, key: object) -> None:
    run = Experiment(sqlite_workspace, "tags").start_logging()
    with pytest.raises(InvalidInputError, match="Tag names must be non-empty strings"):
        run.tag(key, "v")  # type: ignore[arg-type]
    assert run.get_tags() == {}


STEP_WITH_A_DAEMON = """
import subprocess, sys, time
tick = "import time\\nwhile True:\\n    print('tick', flush=True)\\n    time.sleep(0.02)\\n"
subprocess.Popen([sys.executable, "-c", tick], start_new_session=True)
time.sleep(float(sys.argv[1]))
print("step done", flush=True)
"""


def _run_processes(run_id: str) -> list[int]:
    return [p.pid for p in psutil.process_iter() if _environ(p).get("RUNYARD_RUN_ID") == run_id]


@pytest.mark.usefixtures("no_stray_processes")
def test_a_pipeline_step_leaves_no_process_behind(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"step.py": STEP_WITH_A_DAEMON})
    step = PythonScriptStep("step.py", name="daemon", arguments=[0.3], source_directory=source_dir)
    run = Pipeline(sqlite_workspace, [step]).submit("pipe-leftovers", show_output=False)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    step_run = run.find_step_run("daemon")[0]
    assert _run_processes(step_run.id) == []
    log = step_run.get_job_log()
    time.sleep(0.3)
    assert step_run.get_job_log() == log


@pytest.mark.usefixtures("no_stray_processes")
def test_pipeline_cancel_stops_a_step_child_that_left_the_group(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"step.py": STEP_WITH_A_DAEMON})
    step = PythonScriptStep("step.py", name="daemon", arguments=[60], source_directory=source_dir)
    run = Pipeline(sqlite_workspace, [step]).submit("pipe-cancel", show_output=False)
    step_run = wait_for(lambda: run.find_step_run("daemon")[0], timeout=10)
    wait_for(lambda: "tick" in step_run.get_job_log(), timeout=30)
    run.cancel()
    assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Canceled"
    wait_for(lambda: step_run._refresh().status == "Canceled", timeout=10)
    assert _run_processes(step_run.id) == []
