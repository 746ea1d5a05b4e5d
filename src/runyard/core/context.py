"""Where a piece of code finds its run, and how a cancel request reaches a run's process.

In a submitted job the run comes from the environment its supervisor set (compute/process_job.py):
its id, workspace, experiment and type, so `Run.get_context()` reads nothing from the store and a
script that only logs never imports the store's database or HTTP clients (tests/test_job_imports.py).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from runyard import config
from runyard.core.run import Run
from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError
from runyard.status import TERMINAL_STATUSES, RunStatus

OFFLINE_EXPERIMENT = "offline"
#: Seconds an orphaned run's processes get between SIGTERM and SIGKILL.
ORPHAN_GRACE_SECONDS = 2.0

_context_run: Run | None = None
_context_lock = threading.Lock()


def get_context(allow_offline: bool = True) -> Run:
    global _context_run
    with _context_lock:
        if _context_run is not None:
            return _context_run
        run_id = os.environ.get(config.ENV_RUN_ID)
        if run_id:
            _context_run = _job_run(run_id)
            return _context_run
        if not allow_offline:
            raise InvalidInputError(
                "Run.get_context(allow_offline=False) was called outside a submitted run. Submit the script "
                "with `runyard submit SCRIPT` or experiment.submit(ScriptRunConfig(...)), or allow offline runs."
            )
        _context_run = _start_offline_run()
        return _context_run


def _job_run(run_id: str) -> Run:
    """The run this submitted job executes in, from the variables its supervisor set. A job started
    by an older supervisor (no run type or experiment in the environment) has its record read."""
    workspace = Workspace.get(os.environ[config.ENV_WORKSPACE])
    run_type = os.environ.get(config.ENV_RUN_TYPE)
    experiment_name = os.environ.get(config.ENV_EXPERIMENT)
    if not run_type or not experiment_name:
        return Run.get(workspace, run_id)
    return Run._in_job(workspace, run_id, run_type, experiment_name)


def _start_offline_run() -> Run:
    from runyard.core.experiment import Experiment

    workspace, created = Workspace.find_or_create()
    run = Experiment(workspace, OFFLINE_EXPERIMENT).start_logging(outputs=None, snapshot_directory=None)
    where = f"new workspace {workspace.path}" if created else f"workspace {workspace.path}"
    print(
        f"runyard: not inside a submitted run, so this script records to offline run {run.id} "
        f"(experiment {OFFLINE_EXPERIMENT!r}, {where}). See it with `runyard runs show {run.id}`.",
        file=sys.stderr,
    )
    _end_with_interpreter(run)
    return run


def _end_with_interpreter(run: Run) -> None:
    """Complete the offline run at exit, or fail it when an uncaught exception ends the script."""
    failure: list[BaseException] = []
    previous_hook = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        failure.append(exc)
        previous_hook(kind, exc, tb)

    sys.excepthook = hook

    def finish() -> None:
        if run._refresh().status in TERMINAL_STATUSES:
            return
        if failure:
            run.fail(error_details=failure[0])
        else:
            run.complete()

    atexit.register(finish)


def end_orphan(workspace: Workspace, run_id: str, status: str, error: dict[str, Any] | None) -> bool:
    """End a run nobody supervises any more, as its supervisor would have: stop what is left of its
    process tree, replay its metric spool (a logged value is never lost, however the run ends), write
    process_status.json and 75_job_post.txt, remove its working copy, then set `status`.

    Two readers may notice the same orphan at once: a lock on a file beside the working copy makes the
    second wait and then find the run already ended. Returns False when another reader ended it first."""
    # imported here, not at the top, as in the two functions below: psutil and the spool's replay are
    # for whoever ends or judges a run, and a job's Run.get_context() loads this module without them
    from runyard.core.processes import stop_run_processes
    from runyard.core.run_end import write_job_end

    store = workspace.store
    workspace.work_dir.mkdir(parents=True, exist_ok=True)
    with open(workspace.work_dir / f".{run_id}.end.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            record = store.get_run(run_id)
            if record.status in TERMINAL_STATUSES:
                return False
            stop_run_processes(run_id, record.data, grace=ORPHAN_GRACE_SECONDS)
            work = workspace.work_dir / run_id
            if work.exists() or "process" in record.data:
                ended = "canceled" if status == RunStatus.CANCELED else "orphaned"
                end = write_job_end(workspace, run_id, work, None, ended, record.start_time or time.time())
                if error is not None and end.problems:
                    error = {**error, "message": " ".join([*end.problems, error["message"]])}
            store.set_run_status(run_id, status, error=error)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock.name)


#: Run types a pipeline scheduler owns (engine/execution.py names them; core cannot import engine).
SCHEDULED_RUN_TYPES = ("azureml.PipelineRun", "azureml.StepRun")


def reap_if_orphaned(run: Run) -> bool:
    """A run whose supervising process died would stay Running forever: end it.

    A script run's supervisor (killed, machine reboot): its leftover processes are stopped, its spooled
    metrics stored, and the run marked Failed with the reason. An interactive run (start_logging) whose
    owning process died without completing it is marked Failed too. Only processes on this host are
    judged. Returns True when the run was ended here."""
    from runyard.core.processes import process_state

    record = run.workspace.store.get_run(run.id)
    if record.status in TERMINAL_STATUSES or record.run_type in SCHEDULED_RUN_TYPES:
        return False  # pipeline and step runs belong to their scheduler: its recovery ends them
    supervisor = record.data.get("supervisor")
    if supervisor is not None:
        if process_state(supervisor) != "dead":
            return False
        message = (
            f"The job's supervisor process (pid {supervisor['pid']}) stopped unexpectedly, so the run's "
            "result is unknown. Logs and metrics written so far are kept; "
            "azureml-logs/60_control_log.txt says what the supervisor printed."
        )
    else:
        owner = record.data.get("owner") or {}
        if process_state(owner) != "dead":
            return False
        message = (
            f"The process that ran this interactive run (pid {owner['pid']} on {owner['host']}) ended "
            "without completing it (it was killed, or exited without run.complete()). Metrics it had "
            "not written yet are lost; use `with exp.start_logging() as run:` to end runs for sure."
        )
    return end_orphan(run.workspace, run.id, RunStatus.FAILED, {"code": "SystemError", "message": message})


def request_cancel(run: Run) -> None:
    """Cancel a run. A live supervisor (or scheduler) is asked, and stops the processes itself; otherwise
    the run's processes are stopped here and the run ends Canceled at once."""
    from runyard.core.processes import process_state

    store = run.workspace.store
    record = store.get_run(run.id)
    if record.status in TERMINAL_STATUSES:
        return
    supervisor = record.data.get("supervisor")
    if supervisor is not None and process_state(supervisor) != "dead":
        store.set_run_status(run.id, RunStatus.CANCEL_REQUESTED)  # the supervisor stops the process
        return
    end_orphan(run.workspace, run.id, RunStatus.CANCELED, None)


def workspace_of_current_run() -> Workspace | None:
    value = os.environ.get(config.ENV_WORKSPACE)
    return Workspace.get(Path(value)) if value and os.environ.get(config.ENV_RUN_ID) else None
