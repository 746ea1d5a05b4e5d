"""Which ready step may take a slot now: the scheduler's own pool, and the step's compute target's.

Every step counts against the scheduler's pool (RUNYARD_LOCAL_SLOTS or the cores). A step placed on a
named compute target (`PythonScriptStep(compute_target=cluster)`) also counts against that target's
slots, its `max_nodes` capped by this machine (core/compute_slots.py), so a `max_nodes=1` cluster runs
its steps one at a time while other steps go on beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runyard.core.compute_slots import slots_for

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

LOCAL = "local"


def step_target(step: dict[str, Any]) -> str:
    return str(step.get("compute_target") or LOCAL)


def slot_refusal(ws: Workspace, pool: int, running_targets: Iterable[str], target: str) -> str | None:
    """None when a step on `target` may start now, else why it waits (for data.queuedBecause).

    A target deleted since submission raises ComputeTargetException: that pipeline run fails with it."""
    running = list(running_targets)
    if len(running) >= pool:
        return "all local slots busy"
    if target == LOCAL:
        return None
    if sum(1 for t in running if t == target) >= slots_for(ws, target):
        return f"all slots of compute target {target!r} busy"
    return None
