"""At most N runs of a named compute target at once: a run waits in Queued for one of the target's slots.

Each run's supervisor records itself, then claims a slot before it prepares the run: under a per-target
file lock it counts the target's runs that hold one (core/compute_slots.py `holds_slot`: Preparing,
Starting or Running with a live supervisor or step process on this machine) and, when one is free, moves
its own run to Preparing while still holding the lock, so two supervisors never take the last slot
together. Runs waiting longer go first: the order is their supervisors' start times, which
`process_state` checks against the live process, so a client cannot jump the queue with a made-up
created_time. A run whose supervisor died, a record nobody supervises, and a child run hold no slot, so
neither a crash nor a crafted record blocks the target. The slot count is read again on every try:
`update(max_nodes=...)` applies to runs still waiting, and deleting the target fails them.

Slots are counted per machine: the lock is a file here, and a supervisor on another machine (a client
of the same server workspace) is not provably alive from here, so each machine runs up to max_nodes
runs of the target.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runyard.config import LOCAL_TARGET as LOCAL
from runyard.core.compute_slots import holds_slot, slots_for, target_runs
from runyard.core.processes import process_state
from runyard.core.workspace import Workspace
from runyard.status import RunStatus
from runyard.store.records import RunRecord

POLL_SECONDS = 0.25


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _supervisor_start(record: RunRecord) -> float:
    supervisor = record.data.get("supervisor")
    started = supervisor.get("createTime") if isinstance(supervisor, dict) else None
    return float(started) if isinstance(started, int | float) else record.created_time


def _waiting_before(runs: list[RunRecord], run_id: str) -> list[RunRecord]:
    """Runs queued on the target whose live supervisors started before this one's: they go first."""
    mine = next((r for r in runs if r.run_id == run_id), None)
    if mine is None:
        return []
    since = (_supervisor_start(mine), run_id)
    return [
        r
        for r in runs
        if r.status == RunStatus.QUEUED
        and process_state(r.data.get("supervisor")) == "alive"  # a live supervisor waits for this slot
        and (_supervisor_start(r), r.run_id) < since
    ]


def wait_for_slot(workspace: Workspace, run_id: str, target: str, canceled: Callable[[], bool]) -> bool:
    """Move the run to Preparing once its target has a free slot. False if it was canceled while waiting.
    The 'local' target is not limited here (as before named targets existed). ComputeTargetException when
    the target does not exist (deleted while the run waited)."""
    store = workspace.store
    if target == LOCAL:
        store.set_run_status(run_id, RunStatus.PREPARING)
        return True
    lock = workspace.path / "locks" / f"compute-{target}.lock"
    waiting = False
    while True:
        slots = slots_for(workspace, target)
        with _locked(lock):
            runs = target_runs(workspace, target)
            busy = [r for r in runs if r.run_id != run_id and holds_slot(r)]
            earlier = _waiting_before(runs, run_id)
            if len(busy) + len(earlier) < slots:
                patch = {"queuedBecause": None} if waiting else None
                store.set_run_status(run_id, RunStatus.PREPARING, data=patch)
                return True
        if canceled():
            return False
        if not waiting:
            waiting = True
            store.update_run_data(
                run_id,
                {
                    "queuedBecause": f"All {slots} slot(s) of compute target {target!r} are in use "
                    f"(running: {', '.join(sorted(r.run_id for r in busy)) or 'none'}; queued earlier: "
                    f"{len(earlier)}); this run starts when one is free. "
                    "More at once: AmlCompute.update(max_nodes=...) (capped by RUNYARD_LOCAL_SLOTS / the "
                    "machine's cores)."
                },
            )
        time.sleep(POLL_SECONDS)
