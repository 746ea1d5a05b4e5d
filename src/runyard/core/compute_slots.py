"""How many runs a compute target runs at once, and what its status and nodes look like.

A named target's slots are its `max_nodes`, capped by this machine (`config.local_slots()`:
RUNYARD_LOCAL_SLOTS or the number of cores); a ComputeInstance has one. A "node" in v1's status objects
is one slot: busy while one of the target's runs holds it (Preparing, Starting or Running).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.core.compute_config import ComputeStatus, ScaleSettings
from runyard.status import ACTIVE_STATUSES, RunStatus
from runyard.store.records import ComputeTargetRecord, RunRecord
from runyard.store.sql_compute import LOCAL

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: Statuses that hold one of a target's slots (a run claims its slot by moving to Preparing).
BUSY_STATUSES = (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING)
WAITING_STATUSES = (RunStatus.NOT_STARTED, RunStatus.QUEUED)


def slots_of(record: ComputeTargetRecord | None) -> int:
    """How many runs of this target run at once on this machine (None: the built-in 'local')."""
    if record is None:
        return config.local_slots()
    if record.kind == "ComputeInstance":
        return 1
    return max(1, min(record.max_nodes, config.local_slots()))


def slots_for(workspace: Workspace, target_name: str) -> int:
    """The slot count of a target by name ('local': config.local_slots()). ComputeTargetException if unknown.
    The pipeline scheduler asks this for steps placed on a named target."""
    if target_name == LOCAL:
        return config.local_slots()
    return slots_of(workspace.store.get_compute_target(target_name))


def target_runs(workspace: Workspace, name: str) -> list[RunRecord]:
    """Runs on target `name` that have not ended (pipeline runs excepted: their steps are what runs)."""
    active = workspace.store.list_runs(status=sorted(ACTIVE_STATUSES))
    return [r for r in active if r.target == name and r.run_type != "azureml.PipelineRun"]


def status_of(record: ComputeTargetRecord | None, runs: list[RunRecord]) -> ComputeStatus:
    """v1's status object for a target (None: 'local') given its active runs."""
    data = record.data if record else {}
    slots = slots_of(record)
    return ComputeStatus(
        vm_size=record.vm_size if record else "",
        vm_priority=str(data.get("vm_priority") or "dedicated"),
        slots=slots,
        running=sum(1 for r in runs if r.status in BUSY_STATUSES),
        queued=sum(1 for r in runs if r.status in WAITING_STATUSES),
        scale_settings=ScaleSettings(
            record.min_nodes if record else 0,
            record.max_nodes if record else slots,
            data.get("idle_seconds_before_scaledown"),
        ),
        creation_time=record.created_time if record else 0.0,
    )


def nodes_of(name: str, slots: int, runs: list[RunRecord]) -> list[dict[str, Any]]:
    """v1's list_nodes(): one node per slot, in use by the runs that hold one."""
    busy = [r for r in runs if r.status in BUSY_STATUSES]
    return [
        {
            "nodeId": f"{name}-{i}",
            "nodeState": "running" if i < len(busy) else "idle",
            "runId": busy[i].run_id if i < len(busy) else None,
            "privateIpAddress": "127.0.0.1",
            "publicIpAddress": None,
            "port": None,
        }
        for i in range(slots)
    ]
