"""v1's provisioning configurations and status objects for named compute targets.

`AmlCompute.provisioning_configuration(...)` and `ComputeInstance.provisioning_configuration(...)` return
these; `ComputeTarget.create` turns one into a store record. What runyard honours: `max_nodes` (how many
of the target's runs run at once, capped by this machine's cores), `min_nodes` (checked against
max_nodes), `tags` and `description`. `vm_size` and `vm_priority` are kept as labels; the cloud-only
settings (VNets, SSH, identities, locations) are accepted with a one-time warning (runyard.compat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runyard.compat import v1_keywords
from runyard.store.records import ComputeTargetRecord
from runyard.store.sql_compute import validate_compute_target

#: What a local target reports as its provisioning state: it exists as soon as its record does.
SUCCEEDED = "Succeeded"

_CLOUD_ONLY = "runs use this machine's processes and network; there is no VM, VNet or cloud identity"

#: AmlCompute.provisioning_configuration's parameters that are accepted and ignored, with the reason.
AML_IGNORED = {
    "vm_size": "kept as a label; runs use this machine's cores (max_nodes sets how many run at once)",
    "vm_priority": "kept as a label; local processes are never preempted",
    "idle_seconds_before_scaledown": "local slots cost nothing while idle, so there is nothing to scale down",
    "admin_username": _CLOUD_ONLY,
    "admin_user_password": _CLOUD_ONLY,
    "admin_user_ssh_key": _CLOUD_ONLY,
    "vnet_resourcegroup_name": _CLOUD_ONLY,
    "vnet_name": _CLOUD_ONLY,
    "subnet_name": _CLOUD_ONLY,
    "remote_login_port_public_access": _CLOUD_ONLY,
    "identity_type": _CLOUD_ONLY,
    "identity_id": _CLOUD_ONLY,
    "location": "runs on this machine",
    "enable_node_public_ip": _CLOUD_ONLY,
}

#: ComputeInstance.provisioning_configuration's, likewise.
INSTANCE_IGNORED = {
    "vm_size": "kept as a label; runs use this machine",
    "ssh_public_access": _CLOUD_ONLY,
    "admin_user_ssh_public_key": _CLOUD_ONLY,
    "vnet_resourcegroup_name": _CLOUD_ONLY,
    "vnet_name": _CLOUD_ONLY,
    "subnet_name": _CLOUD_ONLY,
    "assigned_user_object_id": "a local instance belongs to whoever runs runyard",
    "assigned_user_tenant_id": "a local instance belongs to whoever runs runyard",
}

#: What the Azure-management methods without a local counterpart say when called (they do nothing).
NO_LOCAL_MEANING = "an Azure resource setting (quotas, identities, SSO) with no local counterpart"


@v1_keywords
class ComputeTargetProvisioningConfiguration:
    """The settings of a target to create. `kind` names the class that creates it (v1's `_compute_type`)."""

    kind = "AmlCompute"

    def __init__(
        self,
        vm_size: str = "",
        min_nodes: int = 0,
        max_nodes: int = 1,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.vm_size = vm_size or ""
        self.min_nodes = min_nodes
        self.max_nodes = max_nodes
        self.tags = dict(tags or {})
        self.description = description
        self.extra = dict(extra or {})  # vm_priority, idle_seconds_before_scaledown, ... as given
        for key, value in self.extra.items():
            setattr(self, key, value)

    def validate_configuration(self) -> None:
        """ComputeTargetException if the settings break v1's rules (a name is checked at create)."""
        validate_compute_target(self.record("placeholder"))

    def record(self, name: str, created_time: float = 0.0) -> ComputeTargetRecord:
        return ComputeTargetRecord(
            name=name,
            kind=self.kind,
            vm_size=self.vm_size,
            min_nodes=self.min_nodes,
            max_nodes=self.max_nodes,
            created_time=created_time,
            data={**self.extra, "tags": self.tags, "description": self.description},
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vm_size={self.vm_size!r}, min_nodes={self.min_nodes}, "
            f"max_nodes={self.max_nodes})"
        )


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    kind = "AmlCompute"


class ComputeInstanceProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    kind = "ComputeInstance"


@dataclass
class ScaleSettings:
    """v1's `AmlCompute.scale_settings`."""

    minimum_node_count: int
    maximum_node_count: int
    idle_seconds_before_scaledown: int | None = None

    def serialize(self) -> dict[str, Any]:
        return {
            "minNodeCount": self.minimum_node_count,
            "maxNodeCount": self.maximum_node_count,
            "nodeIdleTimeBeforeScaleDown": self.idle_seconds_before_scaledown,
        }


@dataclass
class NodeStateCounts:
    idle_node_count: int = 0
    running_node_count: int = 0
    preparing_node_count: int = 0
    unusable_node_count: int = 0
    leaving_node_count: int = 0
    preempted_node_count: int = 0

    def serialize(self) -> dict[str, int]:
        return {
            "idleNodeCount": self.idle_node_count,
            "runningNodeCount": self.running_node_count,
            "preparingNodeCount": self.preparing_node_count,
            "unusableNodeCount": self.unusable_node_count,
            "leavingNodeCount": self.leaving_node_count,
            "preemptedNodeCount": self.preempted_node_count,
        }


@dataclass
class ComputeStatus:
    """What `get_status()` returns (v1's AmlComputeStatus / ComputeInstanceStatus fields).

    Nodes are the target's slots: a slot with a run is a running node, the rest are idle; a local target
    never scales, so the allocation is 'Steady' and the current node count is its slot count."""

    vm_size: str
    vm_priority: str
    slots: int
    running: int
    queued: int
    scale_settings: ScaleSettings
    creation_time: float
    provisioning_state: str = SUCCEEDED
    allocation_state: str = "Steady"
    state: str = "Running"  # ComputeInstance's field: a local instance is always up
    errors: list[Any] = field(default_factory=list)
    provisioning_errors: list[Any] | None = None

    @property
    def current_node_count(self) -> int:
        return self.slots

    @property
    def target_node_count(self) -> int:
        return self.slots

    @property
    def node_state_counts(self) -> NodeStateCounts:
        busy = min(self.running, self.slots)
        return NodeStateCounts(idle_node_count=self.slots - busy, running_node_count=busy)

    def serialize(self) -> dict[str, Any]:
        return {
            "currentNodeCount": self.current_node_count,
            "targetNodeCount": self.target_node_count,
            "nodeStateCounts": self.node_state_counts.serialize(),
            "allocationState": self.allocation_state,
            "errors": self.errors,
            "creationTime": self.creation_time,
            "provisioningState": self.provisioning_state,
            "provisioningErrors": self.provisioning_errors,
            "scaleSettings": self.scale_settings.serialize(),
            "vmPriority": self.vm_priority,
            "vmSize": self.vm_size,
            "state": self.state,
            "queuedRunCount": self.queued,
        }

    def __str__(self) -> str:
        return str(self.serialize())
