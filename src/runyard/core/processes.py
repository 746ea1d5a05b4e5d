"""Which processes belong to a run, whether a recorded process still lives, and how a run's processes stop.

A pid alone names a process only while it lives: the kernel hands the number to the next process once it
is reaped. So every recorded process carries its start time too (`identity()`), and a record counts as
alive only while a process with that pid *and* that start time exists.

A run's processes are more than one process group. A script may fork grandchildren that outlive it
(reparented to init) or call setsid and leave the group. All of them inherit the run's environment
(`RUNYARD_RUN_ID`), so a run's processes are: the recorded root, its descendants, its process group, and
every process whose environment names the run. They are collected before any is signalled (a killed
parent no longer leads to its children), stopped with SIGTERM, given the grace period, then SIGKILLed, and
`stop_processes` returns only when every one of them is gone.

Processes runyard starts detached (a job supervisor, the scheduler; `compute/local.py spawn_detached`) carry
DETACHED_ENV and no run id of their own: they serve the workspace, not the run whose code started them, so
they and their subtrees are left alone.

This lives in core (not compute) because core's cancel and orphan reaping need it as much as the
supervisor and the scheduler do; there is one implementation, used by all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psutil

from runyard import config

#: Set in the environment of processes runyard starts detached: they are not part of the caller's run.
DETACHED_ENV = "RUNYARD_DETACHED"
#: Start times are read from /proc in clock ticks (10 ms); anything closer is the same process.
_CREATE_TIME_TOLERANCE = 0.05


def identity(pid: int | None = None) -> dict[str, Any]:
    """What to record for a process so it can be recognised later: pid, host and start time."""
    pid = os.getpid() if pid is None else int(pid)
    info: dict[str, Any] = {"pid": pid, "host": socket.gethostname()}
    with contextlib.suppress(psutil.Error):
        info["createTime"] = psutil.Process(pid).create_time()
    return info


def _process(info: object) -> psutil.Process | None:
    """The live process a record names on this host, or None (gone, a zombie, or its pid reused)."""
    if not isinstance(info, Mapping) or not info.get("pid"):
        return None
    try:
        proc = psutil.Process(int(info["pid"]))
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        recorded = info.get("createTime")
        if recorded is not None and abs(proc.create_time() - float(recorded)) > _CREATE_TIME_TOLERANCE:
            return None  # the pid now belongs to another process
        return proc
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return None
    except psutil.AccessDenied:
        return psutil.Process(int(info["pid"]))


def process_state(info: object) -> str:
    """'alive', 'dead' or 'unknown' (no pid recorded, or the process is on another host).

    Dead includes a zombie (the submitting process may not have reaped a supervisor that died) and a pid
    now used by a process that started at another time than the recorded one."""
    if not isinstance(info, Mapping) or not info.get("pid") or info.get("host") != socket.gethostname():
        return "unknown"
    return "alive" if _process(info) is not None else "dead"


def _environ(proc: psutil.Process) -> dict[str, str] | None:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return None


def _belongs(proc: psutil.Process, run_ids: set[str]) -> bool:
    """Does a process found in a run's tree or group belong to the run (not to a detached service)?"""
    env = _environ(proc)
    if env is None:
        return True  # unreadable (another user, just exited): it was found in the tree, so it is the run's
    if env.get(config.ENV_RUN_ID) in run_ids:
        return True
    return DETACHED_ENV not in env and config.ENV_RUN_ID not in env


def _protected() -> set[int]:
    """This process and its ancestors: a run's code may call cancel on its own run."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process().parents())
    return pids


def _root(root: object) -> tuple[psutil.Process | None, int | None]:
    """The live root process and the process group to stop. A group id cannot be reused while the group
    has members, so a dead leader's group is still searched; a pid that now names a process started at
    another time means the recorded group is long gone."""
    if root is None:
        return None, None
    info: Mapping[str, Any] = root if isinstance(root, Mapping) else {"pid": root}
    try:
        pid = int(info["pid"])
        proc = psutil.Process(pid)
        recorded = info.get("createTime")
        if recorded is not None and abs(proc.create_time() - float(recorded)) > _CREATE_TIME_TOLERANCE:
            return None, None
        alive = proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        return (proc if alive else None), pid
    except psutil.NoSuchProcess:
        return None, int(info["pid"])
    except (psutil.Error, KeyError, ValueError, TypeError):
        return None, None


def run_processes(root: object = None, run_ids: Iterable[str] = ()) -> list[psutil.Process]:
    """Every live process of a run: `root` (a recorded identity dict or a pid) with its descendants and its
    process group, plus every process whose environment names one of `run_ids`.

    When `run_ids` is empty, the run id is read from the root's (or its group's) environment."""
    ids = {str(r) for r in run_ids if r}
    found: dict[int, psutil.Process] = {}
    leader, group = _root(root)
    candidates: list[psutil.Process] = []
    if leader is not None:
        candidates.append(leader)
    for proc in psutil.process_iter():
        try:
            if group is not None and os.getpgid(proc.pid) == group:
                candidates.append(proc)
            elif ids:
                env = _environ(proc)
                if env is not None and env.get(config.ENV_RUN_ID) in ids:
                    candidates.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    if not ids:
        for proc in candidates:
            value = (_environ(proc) or {}).get(config.ENV_RUN_ID)
            if value:
                ids.add(value)
        if ids:  # a second pass now that the run is known: children that left the group, orphans
            return run_processes(root, ids)
    for proc in candidates:
        with contextlib.suppress(psutil.Error):
            for member in [proc, *proc.children(recursive=True)]:
                if member.pid in found or _gone(member):
                    continue
                if member is leader or _belongs(member, ids):
                    found[member.pid] = member
    for pid in _protected():
        found.pop(pid, None)
    return list(found.values())


def _gone(proc: psutil.Process) -> bool:
    """Exited (a zombie counts: its parent reaps it, and reaping a Popen's child here would steal its
    exit code from the thread that waits on it)."""
    try:
        return not proc.is_running() or proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not _gone(p)]
    return alive


def stop_processes(procs: list[psutil.Process], grace: float | None = None) -> None:
    """SIGTERM every process, SIGKILL those still there after `grace` seconds; return when all are gone."""
    grace = config.cancel_grace_seconds() if grace is None else grace
    procs = [p for p in procs if not _gone(p)]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    alive = _wait_gone(procs, grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    _wait_gone(alive, 30.0)


def stop_tree(
    root: subprocess.Popen[bytes] | int | Mapping[str, Any],
    grace: float | None = None,
    run_ids: Iterable[str] = (),
) -> None:
    """Stop a process, everything it started and everything that belongs to its run; wait for all."""
    popen = root if isinstance(root, subprocess.Popen) else None
    if popen is not None and popen.poll() is None:
        root = identity(popen.pid)
    elif popen is not None:
        root = {"pid": popen.pid, "host": socket.gethostname()}  # exited: its group and run remain
    stop_processes(run_processes(root, run_ids), grace)
    if popen is not None:
        popen.wait()


def proven_root(run_id: str, process: object) -> Mapping[str, Any] | None:
    """The recorded root process of `run_id` when the record provably names it, else None.

    A run record is written by whoever may edit runs (a write token over REST), so a recorded pid is a
    claim, not a fact (issue 10, High 3). It is believed only when the record names this host, carries a
    start time matching the live process, and that process's environment has RUNYARD_RUN_ID equal to
    `run_id` (runyard puts it there at spawn; reading it requires the same user). A process that has
    exited cannot be proven, so its group is not searched either: its leftovers are still found by
    their RUNYARD_RUN_ID."""
    if not isinstance(process, Mapping) or process.get("host") != socket.gethostname():
        return None
    if process.get("createTime") is None or _process(process) is None:
        return None
    try:
        env = psutil.Process(int(process["pid"])).environ()
    except (psutil.Error, OSError, ValueError, TypeError):
        return None
    return process if env.get(config.ENV_RUN_ID) == run_id else None


def stop_run_processes(
    run_id: str, data: Mapping[str, Any], grace: float | None = None, *, own_root: bool = False
) -> bool:
    """The one way a run's processes are stopped: cancel, an orphaned run, a scheduler's recovery, the
    leftovers of a finished script.

    `data` is the run record's data: its recorded "process" (the script or step) names the root, used only
    when `proven_root` proves it belongs to the run; the run id finds what left the tree. Processes on
    another host are not touched. `own_root`: the caller spawned that process itself (its ProcessJob), so
    the root's group is searched even after the root exited. Returns True when anything was running."""
    process = data.get("process")
    if isinstance(process, Mapping) and process.get("host") not in (None, socket.gethostname()):
        return False
    if own_root:
        root = process if isinstance(process, Mapping) and process.get("pid") else None
    else:
        root = proven_root(run_id, process)
    procs = run_processes(root, [run_id])
    stop_processes(procs, grace)
    return bool(procs)
