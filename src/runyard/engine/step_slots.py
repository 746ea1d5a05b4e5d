"""Which ready step may take a slot now: the scheduler's own pool, and the step's compute target's.

Every step counts against the scheduler's pool (RUNYARD_LOCAL_SLOTS or the cores). A step placed on a
named compute target (`PythonScriptStep(compute_target=cluster)`) also counts against that target's
slots, its `max_nodes` capped by this machine (core/compute_slots.py), so a `max_nodes=1` cluster runs
its steps one at a time while other steps go on beside them. The target's slots are shared with script
runs and with the steps of other schedulers: the runs recorded in the store that hold one of its slots
(core/compute_slots.py `holds_slot`, the rule compute/slots.py uses) count too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runyard.core.compute_slots import holds_slot, slots_for, target_runs

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
    slots = slots_for(ws, target)
    ours = sum(1 for t in running if t == target)
    if ours >= slots:
        return f"all slots of compute target {target!r} busy"
    # This scheduler's running steps are recorded Running with their live process before it decides on
    # the next step, so the store's count includes them; `ours` guards the moment before that write.
    held = sum(1 for r in target_runs(ws, target) if holds_slot(r))
    if max(held, ours) >= slots:
        return f"all slots of compute target {target!r} busy (held by runs recorded on it)"
    return None
