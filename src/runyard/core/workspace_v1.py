"""Workspace's v1 properties and helpers that only read what the workspace already knows.

A mixin, so `core/workspace.py` keeps to opening, creating and finding workspaces. Every value here
is real: the Azure names recorded in config.json (or None for a workspace no v1 code named yet), the
datastores, datasets and environments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from runyard.core.azure_identity import AzureIdentity, say_once, warn_mismatch, write_azure_config
from runyard.core.workspace_config import (
    CONFIG_FILE,
    LINK_KEY,
    WRITTEN_KEY,
    config_lock,
    read_json,
    write_config,
)
from runyard.errors import ComputeTargetException, InvalidInputError

if TYPE_CHECKING:
    # imported where used: data/ loads the artifact stores and their HTTP client, which a job that
    # only logs never needs (tests/test_job_imports.py)
    from runyard.data.datastore import Datastore

NO_AZURE_AUTH = (
    "a local workspace needs no sign-in; a server is reached with a runyard token (token= or RUNYARD_TOKEN)"
)
_NO_CLOUD = "runyard creates a local workspace folder; there are no Azure resources to configure"
#: Workspace.create's v1 parameters that have no local meaning, with the reason each is ignored.
CREATE_IGNORED = {
    "auth": NO_AZURE_AUTH,
    **dict.fromkeys(
        (
            "create_resource_group",
            "storage_account",
            "key_vault",
            "app_insights",
            "container_registry",
            "adb_workspace",
            "primary_user_assigned_identity",
            "cmk_keyvault",
            "resource_cmk_uri",
            "hbi_workspace",
            "private_endpoint_config",
            "private_endpoint_auto_approval",
            "user_assigned_identity_for_cmk_encryption",
            "system_datastores_auth_mode",
            "v1_legacy_mode",
        ),
        _NO_CLOUD,
    ),
}


#: The URI scheme of runyard's MLflow tracking-store plugin (pyproject's `mlflow.tracking_store` entry point).
MLFLOW_SCHEME = "runyard"

#: The key in config.json naming the default targets Workspace.create recorded: {"CPU": name, "GPU": name}.
DEFAULT_TARGETS_KEY = "default_compute_targets"
#: The clusters v1 creates when Workspace.create is given a provisioning configuration for a default target.
DEFAULT_CLUSTERS = {"CPU": "cpu-cluster", "GPU": "gpu-cluster"}


def default_targets(cpu: Any, gpu: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Workspace.create's default_cpu/gpu_compute_target as ({kind: target name}, {name: provisioning
    configuration to create}). Each may be a target's name, a ComputeTarget, or (as in v1) a
    provisioning configuration, which creates 'cpu-cluster' / 'gpu-cluster'."""
    names: dict[str, str] = {}
    to_create: dict[str, Any] = {}
    for kind, value in (("CPU", cpu), ("GPU", gpu)):
        if value is None:
            continue
        if isinstance(value, str) and value.strip():
            names[kind] = value
        elif isinstance(getattr(value, "name", None), str) and hasattr(value, "workspace"):
            names[kind] = value.name  # a ComputeTarget
        elif callable(getattr(value, "record", None)) and hasattr(value, "vm_size"):
            names[kind] = DEFAULT_CLUSTERS[kind]
            to_create[DEFAULT_CLUSTERS[kind]] = value
        else:
            raise InvalidInputError(
                f"default_{kind.lower()}_compute_target must be a compute target's name, a ComputeTarget, or "
                f"AmlCompute.provisioning_configuration(...), not {value!r}."
            )
    return names, to_create


class WorkspaceV1:
    path: Path
    tracking_uri: str
    _name: str
    _azure: AzureIdentity | None
    _sku: str
    _tags: dict[str, str] | None
    _recorded: dict[str, Any]

    def _adopt(self, wanted: AzureIdentity, found_in: Path | None = None, quiet: bool = False) -> None:
        """Record the Azure names on this workspace the first time; say once where it is; warn on a mismatch."""
        recorded = self._azure
        if recorded is None:
            with config_lock(self.path):
                current = read_json(self.path / CONFIG_FILE)
                recorded = AzureIdentity.from_recorded(current.get("azure"))
                if recorded is None:
                    current["azure"] = wanted.as_config()
                    write_config(self.path, current)
                    recorded = wanted
            self._azure = recorded
        if not recorded.same_workspace(wanted):
            warn_mismatch(self.path, recorded, wanted)
        if quiet:
            return
        where = f" (from {found_in})" if found_in is not None else ""
        say_once(
            "azure",
            wanted.workspace_name,
            str(self.path),
            message=f"Azure ML workspace {wanted.workspace_name!r}{where} is the local runyard workspace at "
            f"{self.path}",
        )

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def name(self) -> str:
        """The v1 workspace name when v1 code named this workspace, else the folder's name."""
        return self._azure.workspace_name if self._azure is not None else self._name

    @property
    def subscription_id(self) -> str | None:
        return self._azure.subscription_id if self._azure is not None else None

    @property
    def resource_group(self) -> str | None:
        return self._azure.resource_group if self._azure is not None else None

    @property
    def location(self) -> str:
        """'local', unless v1 code recorded a location (`Workspace.create(..., location=...)`)."""
        recorded = self._azure.location if self._azure is not None else None
        return recorded or str(self._recorded.get("location") or "local")

    @property
    def sku(self) -> str:
        return self._sku if self._sku != "basic" else str(self._recorded.get("sku") or "basic")

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags if self._tags is not None else self._recorded.get("tags") or {})

    @property
    def datastores(self) -> dict[str, Datastore]:
        """The built-in 'workspaceblobstore' and 'workspacefilestore' and every registered datastore, by name."""
        from runyard.data.datastore import Datastore, builtin_datastores

        found = dict(builtin_datastores(self))  # type: ignore[arg-type]
        for record in self.store.list_datastores():  # type: ignore[attr-defined]
            found[record.name] = Datastore._of(self, record)  # type: ignore[arg-type]
        return found

    @property
    def compute_targets(self) -> dict[str, Any]:
        """The named compute targets (AmlCompute, ComputeInstance) by name; 'local' is implied, as in v1."""
        from runyard.core.compute_target import (
            compute_targets,  # same layer; compute_target imports Workspace
        )

        return dict(compute_targets(self))  # type: ignore[arg-type]

    @property
    def datasets(self) -> dict[str, Any]:
        """Registered datasets by name (latest version of each)."""
        from runyard.data.dataset import registered_datasets  # the dataset classes import core

        return dict(registered_datasets(self))  # type: ignore[arg-type]

    @property
    def environments(self) -> dict[str, Any]:
        """Environments by name: the latest version of every registered one, and the curated ones."""
        from runyard.environments.environment import Environment  # Environment.list reads self.store

        return Environment.list(self)

    def get_default_compute_target(self, type: str) -> Any:
        """The default 'CPU' or 'GPU' target that Workspace.create(default_cpu_compute_target=...,
        default_gpu_compute_target=...) recorded, as a ComputeTarget; None when none was set (runs
        without a target go to 'local')."""
        kind = str(type).upper()
        if kind not in DEFAULT_CLUSTERS:
            raise InvalidInputError(f"get_default_compute_target: type must be 'CPU' or 'GPU', not {type!r}.")
        recorded = self._recorded.get(DEFAULT_TARGETS_KEY)
        name = recorded.get(kind) if isinstance(recorded, dict) else None
        if not isinstance(name, str):
            return None
        from runyard.core.compute_target import ComputeTarget  # same layer; it imports Workspace

        try:
            return ComputeTarget(self, name)  # type: ignore[arg-type]
        except ComputeTargetException as exc:
            raise ComputeTargetException(
                f"The workspace's default {kind} target {name!r} (set by Workspace.create) no longer exists. "
                f"Create it again with ComputeTarget.create(ws, {name!r}, AmlCompute.provisioning_configuration"
                "(...)), or name another target when you submit."
            ) from exc

    def get_default_datastore(self) -> Datastore:
        """The datastore set_default_datastore chose, else 'workspaceblobstore'."""
        from runyard.data.datastore import Datastore

        return Datastore(self)  # type: ignore[arg-type]

    def set_default_datastore(self, name: str) -> None:
        """Make `name` (a registered datastore or 'workspaceblobstore') the default; DatastoreNotFound
        (listing the known names) otherwise."""
        from runyard.data.datastore import Datastore

        store = Datastore(self, name)  # type: ignore[arg-type]
        self.store.set_default_datastore_name(store.name)  # type: ignore[attr-defined]

    def get_mlflow_tracking_uri(self, _with_auth: bool = False) -> str:
        """The address MLflow logs into this workspace with: the server's URL for a workspace opened by
        URL (its token goes in MLFLOW_TRACKING_TOKEN), else `runyard:/abs/path/to/workspace`, which
        runyard's MLflow plugin (runyard.mlflow_api.plugin) answers in process, without a server.
        `_with_auth`: v1 puts an Azure token in the URI; runyard's URIs never carry one."""
        if self.is_remote:
            return self.tracking_uri
        return f"{MLFLOW_SCHEME}:{quote(str(self.path))}"

    def write_config(self, path: str | os.PathLike[str] | None = None, file_name: str | None = None) -> None:
        """Write `<path>/.azureml/config.json` (default: the current folder) in v1's form, naming this
        workspace, so `Workspace.from_config()` (runyard's or v1's) reads it back. A workspace no v1 code
        named yet is given the names ('local', 'local', its name) now."""
        identity = self._azure
        if identity is None:
            identity = AzureIdentity("local", "local", self._name)
            self._adopt(identity, quiet=True)
        target = write_azure_config(identity, Path(path) if path is not None else None, file_name)
        project = target.parent.parent
        link = os.path.relpath(self.path, project) if self.path.is_relative_to(project) else str(self.path)
        if not self.path.is_relative_to(project):
            self._vouch_for(target)
        written = read_json(target)
        written[LINK_KEY] = link
        target.write_text(_dumps(written))

    def _vouch_for(self, config_file: Path) -> None:
        """List `config_file` in this workspace's config.json: a link out of a project is followed only
        to a workspace that wrote that very file (workspace_config._linked)."""
        with config_lock(self.path):
            current = read_json(self.path / CONFIG_FILE)
            recorded = current.get(WRITTEN_KEY)
            known: list[Any] = recorded if isinstance(recorded, list) else []
            if str(config_file.resolve()) not in known:
                current[WRITTEN_KEY] = [*known, str(config_file.resolve())]
                write_config(self.path, current)

    def _v1_details(self) -> dict[str, Any]:
        azure = self._azure
        resource = (
            f"/subscriptions/{azure.subscription_id}/resourceGroups/{azure.resource_group}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{azure.workspace_name}"
            if azure is not None
            else str(self.path)
        )
        return {"id": resource, "location": self.location, "sku": self.sku, "tags": self.tags}


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2) + "\n"
