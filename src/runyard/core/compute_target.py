"""Named compute targets: v1's ComputeTarget, AmlCompute and ComputeInstance, run on this machine.

v1 code provisions a cluster before it submits (`try: ComputeTarget(ws, name) except
ComputeTargetException: ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(...))`).
Here that creates a record in the workspace's store (so a server workspace shares its targets), and
runs submitted to the target start as local processes, at most `slots_for(ws, name)` at a time: the
target's `max_nodes`, capped by this machine's cores (`config.local_slots()`); one for a
ComputeInstance. `vm_size` is kept as a label. 'local' is built in: always there, never a record.
"""

from __future__ import annotations

import builtins
import datetime
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from runyard import config
from runyard.compat import v1_ignores, v1_keywords
from runyard.core.compute_config import (
    AmlComputeProvisioningConfiguration,
    ComputeInstanceProvisioningConfiguration,
    ComputeStatus,
    ComputeTargetProvisioningConfiguration,
    ScaleSettings,
)
from runyard.core.experiment import matches_filters
from runyard.core.run import Run
from runyard.errors import ComputeTargetException, ConflictError
from runyard.status import ACTIVE_STATUSES, RunStatus
from runyard.store.records import ComputeTargetRecord, RunRecord
from runyard.store.sql_compute import LOCAL, validate_compute_target

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: Statuses that hold one of a target's slots (a run claims its slot by moving to Preparing).
BUSY_STATUSES = (RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING)
_CLOUD_ONLY = "runs use this machine's processes and network; there is no VM, VNet or cloud identity"


def slots_of(record: ComputeTargetRecord) -> int:
    """How many runs of this target run at once on this machine."""
    if record.kind == "ComputeInstance":
        return 1
    return max(1, min(record.max_nodes, config.local_slots()))


def slots_for(workspace: Workspace, target_name: str) -> int:
    """The slot count of a target by name ('local': config.local_slots()). ComputeTargetException if unknown.
    The pipeline scheduler asks this for steps placed on a named target."""
    if target_name == LOCAL:
        return config.local_slots()
    return slots_of(workspace.store.get_compute_target(target_name))


def target_runs(workspace: Workspace, name: str) -> builtins.list[RunRecord]:
    """Runs on target `name` that have not ended (pipeline runs excepted: their steps are what runs)."""
    active = workspace.store.list_runs(status=sorted(ACTIVE_STATUSES))
    return [r for r in active if r.target == name and r.run_type != "azureml.PipelineRun"]


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


@v1_keywords
class ComputeTarget:
    """A compute target by name. `ComputeTarget(ws, name)` returns the target's own class (AmlCompute,
    ComputeInstance) and raises ComputeTargetException when there is none, as v1 samples expect."""

    type: ClassVar[str] = "Local"
    _record: ComputeTargetRecord | None

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
        return config.local_slots() if self._record is None else slots_of(self._record)

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
        runs = target_runs(self.workspace, self.name)
        busy = sum(1 for r in runs if r.status in BUSY_STATUSES)
        record = self._record
        data = record.data if record else {}
        return ComputeStatus(
            vm_size=record.vm_size if record else "",
            vm_priority=str(data.get("vm_priority") or "dedicated"),
            slots=self.slots,
            running=busy,
            queued=sum(1 for r in runs if r.status in (RunStatus.QUEUED, RunStatus.NOT_STARTED)),
            scale_settings=ScaleSettings(
                record.min_nodes if record else 0,
                record.max_nodes if record else self.slots,
                data.get("idle_seconds_before_scaledown"),
            ),
            creation_time=record.created_time if record else 0.0,
        )

    def wait_for_completion(self, show_output: bool = False, is_delete_operation: bool = False) -> None:
        """Provisioning is immediate here: check the target is (or, after delete(), is no longer) there."""
        self._finish_wait(show_output, is_delete_operation)

    def _finish_wait(
        self, show_output: bool, is_delete_operation: bool, min_node_count: int | None = None
    ) -> None:
        if is_delete_operation:
            if self._record is not None and self.name in compute_targets(self.workspace):
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
        for record in target_runs(self.workspace, self.name):
            run = Run._from_record(self.workspace, record)
            if matches_filters(run, tags=tags, properties=properties, type=type, status=status):
                yield run

    def __repr__(self) -> str:
        return f"{self.type}(workspace={self.workspace.name!r}, name={self.name!r}, slots={self.slots})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ComputeTarget) and (other.workspace, other.name) == (
            self.workspace,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((self.workspace, self.name))


@v1_keywords
class AmlCompute(ComputeTarget):
    """A cluster: up to max_nodes of its runs at once (capped by this machine's cores)."""

    type: ClassVar[str] = "AmlCompute"

    @staticmethod
    @v1_ignores(
        vm_size="kept as a label; runs use this machine's cores (max_nodes sets how many run at once)",
        vm_priority="kept as a label; local processes are never preempted",
        idle_seconds_before_scaledown="local slots cost nothing while idle, so there is nothing to scale down",
        admin_username=_CLOUD_ONLY,
        admin_user_password=_CLOUD_ONLY,
        admin_user_ssh_key=_CLOUD_ONLY,
        vnet_resourcegroup_name=_CLOUD_ONLY,
        vnet_name=_CLOUD_ONLY,
        subnet_name=_CLOUD_ONLY,
        remote_login_port_public_access=_CLOUD_ONLY,
        identity_type=_CLOUD_ONLY,
        identity_id=_CLOUD_ONLY,
        location="runs on this machine",
        enable_node_public_ip=_CLOUD_ONLY,
    )
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int = 1800,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        remote_login_port_public_access: str = "NotSpecified",
        identity_type: str | None = None,
        identity_id: Any = None,
        location: str | None = None,
        enable_node_public_ip: bool = True,
    ) -> AmlComputeProvisioningConfiguration:
        """max_nodes=None means 4 (v1's documented default; v1's validation refuses None instead)."""
        if vm_priority not in ("dedicated", "lowpriority"):
            raise ComputeTargetException(
                f"vm_priority must be 'dedicated' or 'lowpriority', got {vm_priority!r}."
            )
        cfg = AmlComputeProvisioningConfiguration(
            vm_size,
            min_nodes,
            4 if max_nodes is None else max_nodes,
            tags,
            description,
            extra={
                "vm_priority": vm_priority,
                "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
            },
        )
        cfg.validate_configuration()
        return cfg

    @property
    def vm_size(self) -> str:
        return self._record.vm_size if self._record else ""

    @property
    def vm_priority(self) -> str:
        return str(self._record.data.get("vm_priority") or "dedicated") if self._record else "dedicated"

    @property
    def scale_settings(self) -> ScaleSettings:
        return self.get_status().scale_settings

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """New scale settings; a changed max_nodes applies to runs that have not started yet."""
        self.refresh_state()
        assert self._record is not None
        old = self._record
        data = dict(old.data)
        if idle_seconds_before_scaledown is not None:
            data["idle_seconds_before_scaledown"] = idle_seconds_before_scaledown
        new = ComputeTargetRecord(
            name=old.name,
            kind=old.kind,
            vm_size=old.vm_size,
            min_nodes=old.min_nodes if min_nodes is None else min_nodes,
            max_nodes=old.max_nodes if max_nodes is None else max_nodes,
            created_time=old.created_time,
            data=data,
        )
        validate_compute_target(new)
        self._record = self.workspace.store.update_compute_target(new)

    def wait_for_completion(  # type: ignore[override]  # v1's AmlCompute signature
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 25,
        is_delete_operation: bool = False,
    ) -> None:
        """Returns at once: a local cluster is ready when its record exists (timeout_in_minutes never runs out)."""
        self._finish_wait(show_output, is_delete_operation, min_node_count)

    def get(self) -> dict[str, Any]:
        return self.serialize()

    def get_active_runs(
        self, type: str | None = None, tags: Any = None, properties: Any = None, status: str | None = None
    ) -> Iterator[Run]:
        return self._active_runs(type, tags, properties, status)

    def list_nodes(self) -> builtins.list[dict[str, Any]]:
        """One node per slot, in use by the runs that hold one."""
        busy = [r for r in target_runs(self.workspace, self.name) if r.status in BUSY_STATUSES]
        return [
            {
                "nodeId": f"{self.name}-{i}",
                "nodeState": "running" if i < len(busy) else "idle",
                "runId": busy[i].run_id if i < len(busy) else None,
                "privateIpAddress": "127.0.0.1",
                "publicIpAddress": None,
                "port": None,
            }
            for i in range(self.slots)
        ]

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every vm_size is accepted as a label; what runs is this machine, described here."""
        return [{"name": "local", "vCPUs": os.cpu_count() or 1, "gpus": 0, "family": "this machine"}]


@v1_keywords
class ComputeInstance(ComputeTarget):
    """A single-user development machine: one run at a time."""

    type: ClassVar[str] = "ComputeInstance"

    @staticmethod
    @v1_ignores(
        vm_size="kept as a label; runs use this machine",
        ssh_public_access=_CLOUD_ONLY,
        admin_user_ssh_public_key=_CLOUD_ONLY,
        vnet_resourcegroup_name=_CLOUD_ONLY,
        vnet_name=_CLOUD_ONLY,
        subnet_name=_CLOUD_ONLY,
        assigned_user_object_id="a local instance belongs to whoever runs runyard",
        assigned_user_tenant_id="a local instance belongs to whoever runs runyard",
    )
    def provisioning_configuration(
        vm_size: str = "",
        ssh_public_access: bool = False,
        admin_user_ssh_public_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        assigned_user_object_id: str | None = None,
        assigned_user_tenant_id: str | None = None,
    ) -> ComputeInstanceProvisioningConfiguration:
        return ComputeInstanceProvisioningConfiguration(vm_size, 0, 1, tags, description)

    @property
    def vm_size(self) -> str:
        return self._record.vm_size if self._record else ""

    def delete(self, wait_for_completion: bool = False, show_output: bool = False) -> None:
        super().delete()
        if wait_for_completion:
            self._finish_wait(show_output, True)

    def _no_op(self, state: str, show_output: bool) -> None:
        self.refresh_state()
        if show_output:
            print(f"{self.name}: {state} (a local instance is always running)")

    def start(self, wait_for_completion: bool = False, show_output: bool = False) -> None:
        self._no_op("Running", show_output)

    def stop(self, wait_for_completion: bool = False, show_output: bool = False) -> None:
        self._no_op("Running", show_output)

    def restart(self, wait_for_completion: bool = False, show_output: bool = False) -> None:
        self._no_op("Running", show_output)

    def wait_for_completion(self, show_output: bool = False, is_delete_operation: bool = False) -> None:
        self._finish_wait(show_output, is_delete_operation)

    def get(self) -> dict[str, Any]:
        return self.serialize()

    def get_active_runs(
        self, type: str | None = None, tags: Any = None, properties: Any = None, status: str | None = None
    ) -> Iterator[Run]:
        return self._active_runs(type, tags, properties, status)

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> builtins.list[dict[str, Any]]:
        return AmlCompute.supported_vmsizes(workspace, location)


_CLASSES: dict[str, type[ComputeTarget]] = {"AmlCompute": AmlCompute, "ComputeInstance": ComputeInstance}


def compute_targets(workspace: Workspace) -> dict[str, ComputeTarget]:
    """What `ws.compute_targets` returns: the named targets by name."""
    return {t.name: t for t in ComputeTarget.list(workspace)}


__all__ = [
    "AmlCompute",
    "ComputeInstance",
    "ComputeTarget",
    "ComputeTargetException",
    "compute_targets",
    "slots_for",
]
