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
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from runyard.compat import v1_ignores, v1_keywords, warn_ignored
from runyard.core.compute_base import ComputeTarget
from runyard.core.compute_config import (
    AML_IGNORED,
    INSTANCE_IGNORED,
    NO_LOCAL_MEANING,
    AmlComputeProvisioningConfiguration,
    ComputeInstanceProvisioningConfiguration,
    ScaleSettings,
)
from runyard.core.compute_slots import nodes_of, slots_for, target_runs
from runyard.core.run import Run
from runyard.errors import ComputeTargetException
from runyard.store.records import ComputeTargetRecord
from runyard.store.sql_compute import validate_compute_target

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace


@v1_keywords
class AmlCompute(ComputeTarget):
    """A cluster: up to max_nodes of its runs at once (capped by this machine's cores)."""

    type: ClassVar[str] = "AmlCompute"

    @staticmethod
    @v1_ignores(**AML_IGNORED)
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
        return nodes_of(self.name, self.slots, target_runs(self.workspace, self.name))

    def add_identity(self, identity_type: str, identity_id: Any = None) -> None:
        """Does nothing: local runs use the credentials of whoever runs them."""
        warn_ignored("AmlCompute.add_identity", "identity_type", NO_LOCAL_MEANING)

    def remove_identity(self, identity_id: Any = None) -> None:
        warn_ignored("AmlCompute.remove_identity", "identity_id", NO_LOCAL_MEANING)

    @staticmethod
    def list_usages(
        workspace: Workspace, show_all: bool = False, location: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """No Azure quota is used locally: an empty list."""
        return []

    @staticmethod
    def list_quotas(workspace: Workspace, location: str | None = None) -> builtins.list[dict[str, Any]]:
        return []

    @staticmethod
    def update_quotas(
        workspace: Workspace, vm_family: str, limit: int | None = None, location: str | None = None
    ) -> None:
        warn_ignored("AmlCompute.update_quotas", "vm_family", NO_LOCAL_MEANING)

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every vm_size is accepted as a label; what runs is this machine, described here."""
        return [{"name": "local", "vCPUs": os.cpu_count() or 1, "gpus": 0, "family": "this machine"}]


@v1_keywords
class ComputeInstance(ComputeTarget):
    """A single-user development machine: one run at a time."""

    type: ClassVar[str] = "ComputeInstance"

    @staticmethod
    @v1_ignores(**INSTANCE_IGNORED)
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

    def get_docs_url(self) -> str:
        return "https://learn.microsoft.com/azure/machine-learning/concept-compute-instance"

    def update_sso_settings(self, value: bool) -> None:
        warn_ignored("ComputeInstance.update_sso_settings", "value", NO_LOCAL_MEANING)


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
