"""The base of named compute targets: lookup by name, create, status, wait, delete, serialize.

`ComputeTarget(ws, name)` answers with the class of the target's kind. The kinds (AmlCompute,
ComputeInstance: core/compute_target.py, the public module) register themselves here when they are
defined, so this module needs no import of them.
"""

from __future__ import annotations

import builtins
import datetime
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from runyard.compat import v1_keywords
from runyard.core.compute_config import ComputeStatus, ComputeTargetProvisioningConfiguration
from runyard.core.compute_slots import slots_of, status_of, target_runs
from runyard.core.run import Run
from runyard.errors import ComputeTargetException, ConflictError
from runyard.status import ACTIVE_STATUSES
from runyard.store.records import ComputeTargetRecord
from runyard.store.sql_compute import LOCAL, validate_compute_target

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: The class for each kind of record ("AmlCompute" -> AmlCompute), filled by __init_subclass__.
_CLASSES: dict[str, type[ComputeTarget]] = {}


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


@v1_keywords
class ComputeTarget:
    """A compute target by name. `ComputeTarget(ws, name)` returns the target's own class (AmlCompute,
    ComputeInstance) and raises ComputeTargetException when there is none, as v1 samples expect."""

    type: ClassVar[str] = "Local"
    _record: ComputeTargetRecord | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.type] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> ComputeTarget:
        given = dict(zip(("workspace", "name"), args, strict=False)) | kwargs
        if len(args) > 2 or set(given) != {"workspace", "name"}:
            return super().__new__(cls)  # a bad call: __init__ reports it (with "did you mean")
        workspace, name = given["workspace"], given["name"]
        record = None if name == LOCAL else workspace.store.get_compute_target(name)
        klass = _CLASSES.get(record.kind, ComputeTarget) if record else ComputeTarget
        if cls is not ComputeTarget and klass is not cls:
            what = f"a {record.kind}" if record else "the built-in local target (this machine)"
            raise ComputeTargetException(
                f"Compute target {name!r} is {what}, not a {cls.__name__}; "
                f"look it up with ComputeTarget(ws, {name!r})."
            )
        obj = super().__new__(klass)
        obj._record = record
        return obj

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name

    @classmethod
    def _from_record(cls, workspace: Workspace, record: ComputeTargetRecord) -> ComputeTarget:
        obj = object.__new__(_CLASSES[record.kind])
        obj.workspace, obj.name, obj._record = workspace, record.name, record
        return obj

    # -- what v1 code reads ----------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return slots_of(self._record)

    @property
    def provisioning_state(self) -> str:
        return "Succeeded"

    @property
    def provisioning_errors(self) -> None:
        return None

    @property
    def location(self) -> str:
        return "local"

    cluster_location = location

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._record.data.get("tags") or {}) if self._record else {}

    @property
    def description(self) -> str | None:
        return self._record.data.get("description") if self._record else "This machine's processes"

    @property
    def created_on(self) -> str | None:
        return _timestamp(self._record.created_time) if self._record else None

    @property
    def status(self) -> ComputeStatus:
        return self.get_status()

    # -- lifecycle ---------------------------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Workspace, name: str, provisioning_configuration: ComputeTargetProvisioningConfiguration
    ) -> ComputeTarget:
        """Create the named target, or return it when it already exists with these settings.

        An existing target of the same kind and vm_size takes the new scale settings, tags and description
        (v1's create is a PUT of the cluster); another kind or vm_size is refused, as Azure refuses to
        change a cluster's VM size: delete() it first or choose another name."""
        cfg = provisioning_configuration
        if not isinstance(cfg, ComputeTargetProvisioningConfiguration):
            raise ComputeTargetException(
                f"ComputeTarget.create needs a provisioning configuration, got {type(cfg).__name__}: pass "
                "AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2', max_nodes=4)."
            )
        record = cfg.record(name, time.time())
        validate_compute_target(record)
        store = workspace.store
        try:
            made = store.create_compute_target(record)
        except ConflictError:
            old = store.get_compute_target(name)
            if (old.kind, old.vm_size) != (record.kind, record.vm_size):
                raise ComputeTargetException(
                    f"Compute target {name!r} already exists as a {old.kind} with vm_size {old.vm_size!r}; "
                    f"it cannot become a {record.kind} with vm_size {record.vm_size!r}. Delete it first "
                    f"(ComputeTarget(ws, {name!r}).delete()) or choose another name."
                ) from None
            same = (old.min_nodes, old.max_nodes, old.data) == (
                record.min_nodes,
                record.max_nodes,
                record.data,
            )
            made = old if same else store.update_compute_target(record)
        return ComputeTarget._from_record(workspace, made)

    @staticmethod
    def attach(workspace: Workspace, name: str, attach_configuration: Any) -> ComputeTarget:
        raise ComputeTargetException(
            f"Attaching existing resources ({type(attach_configuration).__name__}) as {name!r} needs a cloud "
            "workspace. runyard runs everything on this machine: create a named local target instead with "
            f"ComputeTarget.create(ws, {name!r}, AmlCompute.provisioning_configuration(max_nodes=4))."
        )

    def delete(self) -> None:
        """Remove the target. Runs still queued on it fail (their target is gone); running ones finish."""
        self.workspace.store.delete_compute_target(self.name)

    def detach(self) -> None:
        raise ComputeTargetException(
            f"detach() is for attached resources; {self.name!r} is a {self.type}: use delete() to remove it."
        )

    def refresh_state(self) -> None:
        if self._record is not None:
            self._record = self.workspace.store.get_compute_target(self.name)

    def get_status(self) -> ComputeStatus:
        """Fresh counts: a node is one of the target's slots, busy while a run of the target holds it."""
        self.refresh_state()
        return status_of(self._record, target_runs(self.workspace, self.name))

    def wait_for_completion(self, show_output: bool = False, is_delete_operation: bool = False) -> None:
        """Provisioning is immediate here: check the target is (or, after delete(), is no longer) there."""
        self._finish_wait(show_output, is_delete_operation)

    def _finish_wait(
        self, show_output: bool, is_delete_operation: bool, min_node_count: int | None = None
    ) -> None:
        if is_delete_operation:
            if self._record is not None and self.name in {t.name for t in ComputeTarget.list(self.workspace)}:
                raise ComputeTargetException(
                    f"Compute target {self.name!r} still exists; call delete() before waiting for the deletion."
                )
            if show_output:
                print(f'Current provisioning state of {self.type} is "Deleting"\n\nDeleted')
            return
        self.refresh_state()
        if min_node_count is not None and min_node_count > self.slots:
            raise ComputeTargetException(
                f"{self.name!r} has {self.slots} local slot(s) (max_nodes capped by RUNYARD_LOCAL_SLOTS or this "
                f"machine's {os.cpu_count()} cores); min_node_count={min_node_count} can never be reached. "
                "Ask for fewer nodes, or raise RUNYARD_LOCAL_SLOTS."
            )
        if show_output:
            print(f"{self.provisioning_state}")
            print(f"{self.type} wait for completion finished\n")
            print(
                f"Minimum number of nodes requested have been provisioned ({self.name}: {self.slots} local "
                "slot(s) on this machine)"
            )

    def serialize(self) -> dict[str, Any]:
        status = self.get_status()
        return {
            "id": f"runyard:{self.workspace.name}/computes/{self.name}",
            "name": self.name,
            "location": self.location,
            "tags": self.tags,
            "properties": {
                "description": self.description,
                "computeType": self.type,
                "computeLocation": self.location,
                "provisioningState": self.provisioning_state,
                "provisioningErrors": None,
                "createdOn": self.created_on,
                "properties": {
                    "vmSize": status.vm_size,
                    "vmPriority": status.vm_priority,
                    "scaleSettings": status.scale_settings.serialize(),
                    "slots": self.slots,
                },
                "status": status.serialize(),
            },
        }

    @staticmethod
    def deserialize(workspace: Workspace, object_dict: dict[str, Any]) -> ComputeTarget:
        return ComputeTarget(workspace, object_dict["name"])

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[ComputeTarget]:
        """The workspace's named targets by name (v1 lists provisioned ones; 'local' is not among them)."""
        return [ComputeTarget._from_record(workspace, r) for r in workspace.store.list_compute_targets()]

    def _active_runs(self, type: str | None, tags: Any, properties: Any, status: str | None) -> Iterator[Run]:
        active = sorted(ACTIVE_STATUSES) if status is None else [status] if status in ACTIVE_STATUSES else []
        if not active:  # an empty status list would mean "any status" to list_runs
            return
        records = self.workspace.store.list_runs(
            target=self.name, status=active, run_type=type, tags=tags, properties=properties
        )
        for record in records:  # one query, filtered in the store
            if record.run_type != "azureml.PipelineRun":  # its steps are what runs on the target
                yield Run._from_record(self.workspace, record)

    def __repr__(self) -> str:
        return f"{self.type}(workspace={self.workspace.name!r}, name={self.name!r}, slots={self.slots})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ComputeTarget) and (other.workspace, other.name) == (
            self.workspace,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((self.workspace, self.name))
