"""Which process is a workspace's scheduler: an flock on <workspace>/scheduler.lock (the kernel drops it
when the process dies, even by SIGKILL) and scheduler.json with its pid; `ensure_running` starts one."""

from __future__ import annotations

import fcntl
import json
from typing import IO, Any

from runyard.compute.local import spawn_detached
from runyard.core.workspace import Workspace

LOCK_FILE = "scheduler.lock"
INFO_FILE = "scheduler.json"
LOG_FILE = "scheduler.log"
UNAUTHENTICATED_FLAG = "--accept-unauthenticated"


def _try_lock(ws: Workspace) -> IO[str] | None:
    handle = open(ws.path / LOCK_FILE, "a+")  # noqa: SIM115 - held for the service's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def service_info(ws: Workspace) -> dict[str, Any] | None:
    """The running service's pid/host, or None when no service holds the lock."""
    handle = _try_lock(ws)
    if handle is not None:
        handle.close()
        return None
    try:
        return dict(json.loads((ws.path / INFO_FILE).read_text()))
    except (OSError, json.JSONDecodeError):
        return {"pid": None}


def ensure_running(ws: Workspace, *, accept_unauthenticated: bool = False) -> bool:
    """Start a background service for `ws` unless one runs; returns True when one was started.

    accept_unauthenticated: only for a server without --auth that was started as compute, submitting
    from its own process (see SchedulerService)."""
    if service_info(ws) is not None:
        return False
    flags = [UNAUTHENTICATED_FLAG] if accept_unauthenticated else []
    spawn_detached(ws, ["runyard.engine", str(ws.path), *flags], ws.path / LOG_FILE)
    return True
