"""Where a piece of code finds its run, and how a cancel request reaches a run's process."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import TracebackType

from runyard import config
from runyard.core.run import Run
from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError
from runyard.status import TERMINAL_STATUSES, RunStatus

OFFLINE_EXPERIMENT = "offline"

_context_run: Run | None = None
_context_lock = threading.Lock()


def get_context(allow_offline: bool = True) -> Run:
    global _context_run
    with _context_lock:
        if _context_run is not None:
            return _context_run
        run_id = os.environ.get(config.ENV_RUN_ID)
        if run_id:
            workspace = Workspace.get(os.environ[config.ENV_WORKSPACE])
            _context_run = Run.get(workspace, run_id)
            return _context_run
        if not allow_offline:
            raise InvalidInputError(
                "Run.get_context(allow_offline=False) was called outside a submitted run. Submit the script "
                "with `runyard submit SCRIPT` or experiment.submit(ScriptRunConfig(...)), or allow offline runs."
            )
        _context_run = _start_offline_run()
        return _context_run


def _start_offline_run() -> Run:
    from runyard.core.experiment import Experiment

    workspace, created = Workspace.find_or_create()
    run = Experiment(workspace, OFFLINE_EXPERIMENT).start_logging(snapshot_directory=None)
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
            run.fail(failure[0])
        else:
            run.complete()

    atexit.register(finish)


def process_state(info: object) -> str:
    """'alive', 'dead' or 'unknown' (no pid recorded, or the process is on another host).

    A zombie counts as dead: the submitting process may not have reaped a supervisor that died."""
    if not isinstance(info, dict) or "pid" not in info or info.get("host") != socket.gethostname():
        return "unknown"
    pid = int(info["pid"])
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return "dead" if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") else "alive"
    except FileNotFoundError:
        return "dead"
    except OSError:
        pass  # no /proc: fall back to signal 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    return "alive"


def _kill_group(info: object) -> None:
    if process_state(info) == "alive":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(info["pid"]), signal.SIGKILL)  # type: ignore[index]


def reap_if_orphaned(run: Run) -> bool:
    """A script run whose supervisor died (killed, machine reboot) would stay Running forever: end it.

    Kills the script's process group if it is still running and marks the run Failed with the reason.
    Returns True when the run was reaped."""
    record = run.workspace.store.get_run(run.id)
    if record.status in TERMINAL_STATUSES or process_state(record.data.get("supervisor")) != "dead":
        return False
    _kill_group(record.data.get("process"))
    run.workspace.store.set_run_status(
        run.id,
        RunStatus.FAILED,
        error={
            "code": "SystemError",
            "message": f"The job's supervisor process (pid {record.data['supervisor']['pid']}) stopped unexpectedly, "
            "so the run's result is unknown. Logs and metrics written so far are kept; "
            "azureml-logs/60_control_log.txt says what the supervisor printed.",
        },
    )
    return True


def request_cancel(run: Run) -> None:
    store = run.workspace.store
    record = store.get_run(run.id)
    if record.status in TERMINAL_STATUSES:
        return
    supervisor = record.data.get("supervisor")
    if supervisor is not None and process_state(supervisor) != "dead":
        store.set_run_status(run.id, RunStatus.CANCEL_REQUESTED)  # the supervisor stops the process
        return
    _kill_group(record.data.get("process"))
    store.set_run_status(run.id, RunStatus.CANCELED)


def workspace_of_current_run() -> Workspace | None:
    value = os.environ.get(config.ENV_WORKSPACE)
    return Workspace.get(Path(value)) if value and os.environ.get(config.ENV_RUN_ID) else None
