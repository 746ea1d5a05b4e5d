"""Where a piece of code finds its run, and how a cancel request reaches a run's process."""

from __future__ import annotations

import atexit
import os
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


def _process_alive(info: dict[str, object]) -> bool:
    if info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(info["pid"]), 0)  # type: ignore[call-overload]
    except (ProcessLookupError, PermissionError, KeyError, ValueError):
        return False
    return True


def request_cancel(run: Run) -> None:
    store = run.workspace.store
    record = store.get_run(run.id)
    if record.status in TERMINAL_STATUSES:
        return
    supervisor = record.data.get("supervisor")
    if isinstance(supervisor, dict) and _process_alive(supervisor):
        store.set_run_status(run.id, RunStatus.CANCEL_REQUESTED)
        return
    store.set_run_status(run.id, RunStatus.CANCELED)


def workspace_of_current_run() -> Workspace | None:
    value = os.environ.get(config.ENV_WORKSPACE)
    return Workspace.get(Path(value)) if value and os.environ.get(config.ENV_RUN_ID) else None
