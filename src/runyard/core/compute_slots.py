"""How many runs a compute target runs at once, and what its status and nodes look like.

A named target's slots are its `max_nodes`, capped by this machine (`config.local_slots()`:
RUNYARD_LOCAL_SLOTS or the number of cores); a ComputeInstance has one. A "node" in v1's status objects
is one slot: busy while one of the target's runs holds it (`holds_slot`).

One rule decides who holds a slot, for script runs (compute/slots.py) and pipeline steps
(engine/step_slots.py) alike: a run in Preparing, Starting or Running whose recorded supervisor (or step
process) is alive on this machine. A record alone proves nothing, since any write token can create one
that says Running, so a run with no live process recorded ("unknown": none recorded, or on another
host) holds no slot. Child runs (`run.child_run()`) record only their owner: they share their parent's
node, as in v1, and never take a slot of their own. (The status and node views below show what the
records say, Preparing/Starting/Running, since the studio of a server sees runs supervised elsewhere.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.config import LOCAL_TARGET as LOCAL
from runyard.core.compute_config import ComputeStatus, ScaleSettings
from runyard.core.processes import process_state
from runyard.status import ACTIVE_STATUSES, RunStatus
from runyard.store.records import ComputeTargetRecord, RunRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: Statuses that hold one of a target's slots (a run claims its slot by moving to Preparing).
BUSY_STATUSES = (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING)
WAITING_STATUSES = (RunStatus.NOT_STARTED, RunStatus.QUEUED)


def slot_holder(record: RunRecord) -> Any:
    """The process a run's slot is held by: its supervisor (script runs), else its process (steps)."""
    return record.data.get("supervisor") or record.data.get("process")


def holds_slot(record: RunRecord) -> bool:
    """Does this run hold one of its target's slots now? See the module docstring."""
    return record.status in BUSY_STATUSES and process_state(slot_holder(record)) == "alive"


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
    active = workspace.store.list_runs(status=sorted(ACTIVE_STATUSES), target=name)
    return [r for r in active if r.run_type != "azureml.PipelineRun"]


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
