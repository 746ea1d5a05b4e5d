"""Workspace: a folder that holds a database (or points at one) and an artifact root.

Layout of the embedded default (`.runyard/`):

    config.json     tracking_uri, artifact_root, name, id; "azure" once v1 code named this workspace
    runyard.db      SQLite database (WAL mode)
    artifacts/      runs/<run_id>/…, models/<name>/<version>/…
    work/           per-run working copies of source directories, removed when a run ends

v1 code names a cloud workspace (`Workspace(sub, rg, name)`, `Workspace.get(name)`, an Azure
`config.json`); each maps to the local workspace of the project folder, as `core/azure_identity.py`
and `from_config` describe.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runyard import config
from runyard.compat import v1_ignores, v1_keywords
from runyard.core.azure_identity import AzureIdentity
from runyard.core.workspace_config import (
    CONFIG_FILE,
    WRITTEN_KEY,
    config_lock,
    create_folder,
    is_path,
    locate,
    read_config,
    read_json,
    write_config,
)
from runyard.core.workspace_v1 import (
    CREATE_IGNORED,
    DEFAULT_TARGETS_KEY,
    NO_AZURE_AUTH,
    WorkspaceV1,
    default_targets,
)
from runyard.errors import (
    InvalidInputError,
    WorkspaceNotFound,
)
from runyard.store import open_store

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.run import Run
    from runyard.store.artifacts import ArtifactStore
    from runyard.store.base import Store
    from runyard.store.rest_artifacts import RestArtifactStore


@v1_keywords
class Workspace(WorkspaceV1):
    """The root of everything runyard records. Cheap to construct; share one per process if you like.

    `Workspace(path)` (or `path=`) opens a workspace folder. v1's `Workspace(subscription_id,
    resource_group, workspace_name)` opens the local workspace of the current project, creating
    `./.runyard` if there is none, and records the Azure names there the first time.
    """

    @v1_ignores(auth=NO_AZURE_AUTH)
    def __init__(
        self,
        subscription_id: str | os.PathLike[str] | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id: str | None = None,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        _cloud: str = "AzureCloud",
        *,
        path: str | os.PathLike[str] | None = None,
        token: str | None = None,
        _config: dict[str, Any] | None = None,
    ) -> None:
        wanted: AzureIdentity | None = None
        if path is None and resource_group is None and workspace_name is None and subscription_id is not None:
            path = subscription_id  # runyard's Workspace(path)
        if path is None:
            if workspace_name is None:
                raise InvalidInputError(
                    "Workspace() needs a workspace folder, Workspace(path), or v1's "
                    "Workspace(subscription_id, resource_group, workspace_name)."
                )
            wanted = AzureIdentity(
                None if subscription_id is None else str(subscription_id),
                resource_group,
                workspace_name,
                _location,
            )
            path = _project_workspace()
        self._open(Path(path), token, _config)
        self._sku = sku
        self._tags = dict(tags) if tags is not None else None
        if wanted is not None:
            self._adopt(wanted)

    def _open(self, path: Path, token: str | None, _config: dict[str, Any] | None) -> None:
        self.path = path.expanduser().resolve()
        cfg = _config if _config is not None else self._read_config(self.path)
        # A server token: argument, else RUNYARD_TOKEN (how a submitted run gets its run token), else config.
        self.token: str | None = token or os.environ.get(config.ENV_TOKEN) or cfg.get("token")
        self._name: str = cfg.get("name") or self.path.parent.name or "runyard"
        self._azure = AzureIdentity.from_recorded(cfg.get("azure"))
        self._recorded = {k: cfg.get(k) for k in ("sku", "tags", "location", DEFAULT_TARGETS_KEY)}
        self._sku, self._tags = "basic", None
        self.tracking_uri: str = cfg["tracking_uri"]
        self.artifact_root: str = cfg["artifact_root"]
        remote = self.tracking_uri.startswith(("http://", "https://"))
        self.studio_url: str = cfg.get("studio_url") or (
            config.studio_url(self.tracking_uri) if remote else config.studio_url()
        )
        self._identity: str | None = cfg.get("id") if isinstance(cfg.get("id"), str) else None
        self._store: Store | None = None
        self._artifacts: ArtifactStore | RestArtifactStore | None = None

    # -- construction -------------------------------------------------------------------------
    _read_config = staticmethod(read_config)

    @classmethod
    @v1_ignores(**CREATE_IGNORED)
    def create(
        cls,
        name: str | os.PathLike[str] = config.DEFAULT_WORKSPACE_DIRNAME,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        friendly_name: str | None = None,
        storage_account: Any = None,
        key_vault: Any = None,
        app_insights: Any = None,
        container_registry: Any = None,
        adb_workspace: Any = None,
        primary_user_assigned_identity: Any = None,
        cmk_keyvault: Any = None,
        resource_cmk_uri: Any = None,
        hbi_workspace: bool = False,
        default_cpu_compute_target: Any = None,
        default_gpu_compute_target: Any = None,
        private_endpoint_config: Any = None,
        private_endpoint_auto_approval: bool = True,
        exist_ok: bool = False,
        show_output: bool = True,
        user_assigned_identity_for_cmk_encryption: Any = None,
        system_datastores_auth_mode: str = "accessKey",
        v1_legacy_mode: Any = None,
        *,
        path: str | os.PathLike[str] | None = None,
        tracking_uri: str | None = None,
        artifact_root: str | None = None,
    ) -> Workspace:
        """Create a workspace folder.

        `name` is a folder when it is a Path, contains a path separator, starts with '.' or '~', or ends
        with '.runyard' (runyard's `Workspace.create(".runyard")`); any other string is a v1 workspace
        name, created as the current project's local workspace (the one `Workspace(sub, rg, name)` opens;
        `./.runyard` when there is none) with the Azure names recorded. `path=` puts it elsewhere;
        `show_output=False` leaves out the line that says where it is. default_cpu/gpu_compute_target
        (a target's name, or a provisioning configuration that creates 'cpu-cluster' / 'gpu-cluster', as
        in v1) are recorded for ws.get_default_compute_target() when the workspace is new."""
        settings: dict[str, Any] = {
            "tracking_uri": tracking_uri,
            "artifact_root": artifact_root,
            "name": friendly_name,
            "sku": sku if sku != "basic" else None,
            "tags": dict(tags) if tags else None,
            "location": location,
        }
        targets, to_create = default_targets(default_cpu_compute_target, default_gpu_compute_target)
        settings[DEFAULT_TARGETS_KEY] = targets or None
        wanted = None
        if path is None and is_path(name):
            folder = Path(name).expanduser().resolve()
        else:
            wanted = AzureIdentity(subscription_id, resource_group, str(name), location)
            settings["name"] = friendly_name or str(name)
            settings["azure"] = wanted.as_config()
            folder = (
                Path(path).expanduser().resolve() if path is not None else _project_workspace(create=False)
            )
        created = create_folder(folder, settings, exist_ok)
        ws = cls(path=folder)
        if created:
            ws.store  # noqa: B018 - create the schema now, so later concurrent openers find it ready
            if to_create:
                from runyard.core.compute_target import ComputeTarget  # same layer; it imports Workspace

                for target_name, provisioning in to_create.items():
                    ComputeTarget.create(ws, target_name, provisioning)
        if wanted is not None:
            ws._adopt(wanted, quiet=not show_output)
        return ws

    @classmethod
    @v1_ignores(auth=NO_AZURE_AUTH, cloud=NO_AZURE_AUTH, id="a local workspace is found by its folder")
    def get(
        cls,
        name: str | os.PathLike[str] = config.DEFAULT_WORKSPACE_DIRNAME,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str = "AzureCloud",
        id: str | None = None,
        *,
        token: str | None = None,
    ) -> Workspace:
        """Open a server's URL, a workspace folder (or a project folder that contains `.runyard/`), or
        a v1 workspace name (the current project's local workspace, as `Workspace(sub, rg, name)`)."""
        if str(name).startswith(("http://", "https://")):
            return cls._remote(str(name), token)
        folder = Path(name).expanduser().resolve()
        holds = (folder / CONFIG_FILE).exists() or (
            folder / config.DEFAULT_WORKSPACE_DIRNAME / CONFIG_FILE
        ).exists()
        if not holds and not is_path(name):
            return cls(subscription_id, resource_group, str(name), _location=location, token=token)
        if (
            not (folder / CONFIG_FILE).exists()
            and (folder / config.DEFAULT_WORKSPACE_DIRNAME / CONFIG_FILE).exists()
        ):
            folder = folder / config.DEFAULT_WORKSPACE_DIRNAME
        return cls(path=folder, token=token)

    @classmethod
    def _remote(cls, url: str, token: str | None) -> Workspace:
        """A server's workspace. Its local folder (under ~/.cache/runyard) holds only what local
        processes need: working copies of runs and the mirror of files they write."""
        parsed = urlsplit(url)
        folder = config.cache_dir() / "servers" / re.sub(r"[^A-Za-z0-9.-]", "_", parsed.netloc + parsed.path)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"name": parsed.netloc, "tracking_uri": url.rstrip("/"), "artifact_root": url.rstrip("/")}
        with config_lock(folder):
            try:
                current = read_json(folder / CONFIG_FILE)
            except InvalidInputError:  # runyard's own cache: a damaged file is simply written anew
                current = {}
            # keep this client's identity and the config files its write_config() vouches for
            kept = {
                k: current[k]
                for k, kind in (("id", str), (WRITTEN_KEY, list))
                if isinstance(current.get(k), kind)
            }
            if {k: v for k, v in current.items() if k not in kept} != cfg:
                write_config(folder, {**cfg, **kept})
        return cls(folder, token=token)

    @classmethod
    @v1_ignores(auth=NO_AZURE_AUTH)
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """Find the workspace: RUNYARD_WORKSPACE (or a server's RUNYARD_TRACKING_URI), else, walking up
        from `path` (default cwd), the nearest `.runyard/` or Azure ML config file (v1's search order;
        its project's `.runyard/`, created on first use). `path` may also name a config file."""
        uri = os.environ.get(config.ENV_TRACKING_URI, "")
        if path is None and uri.startswith(("http://", "https://")):
            return cls.get(uri)
        env = config.env_workspace()
        if env is not None and path is None:
            return cls.get(env)
        found = locate(Path(path or ".").expanduser().resolve(), _file_name)
        ws = cls(path=found.folder)
        if found.azure is not None:
            ws._adopt(found.azure, found.config_file)
        return ws

    @classmethod
    def find_or_create(cls, path: str | os.PathLike[str] | None = None) -> tuple[Workspace, bool]:
        """The nearest workspace, or a new `./.runyard/`; the flag says whether one was created."""
        try:
            return cls.from_config(path), False
        except WorkspaceNotFound:
            return cls.create(Path(path or ".") / config.DEFAULT_WORKSPACE_DIRNAME, exist_ok=True), True

    # -- parts ----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            label = self.tracking_uri if self.is_remote else str(self.path)
            self._store = open_store(self.tracking_uri, workspace_label=label, token=self.token)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore | RestArtifactStore:
        # imported here, like the store: a job that only logs metrics never touches artifacts (fsspec, httpx)
        if self._artifacts is None:
            if self.artifact_root.startswith(("http://", "https://")):
                from runyard.store.rest_artifacts import RestArtifactStore

                self._artifacts = RestArtifactStore(self.artifact_root, self.token, self.path / "mirror")
            else:
                from runyard.store.artifacts import ArtifactStore

                self._artifacts = ArtifactStore(self.artifact_root)
        return self._artifacts

    @property
    def identity(self) -> str:
        """This workspace folder's stable id (a uuid in its config.json, added when missing).

        Pipelines record it as their placement, so a scheduler starts, recovers and stops only the
        runs submitted from its own folder, even when several folders share one database or server
        (docs/security.md). For a workspace opened by URL it is the client's own cache folder's id.
        """
        if self._identity is None:
            with config_lock(self.path):
                current = read_json(self.path / CONFIG_FILE)
                if not isinstance(current.get("id"), str):
                    current["id"] = uuid.uuid4().hex
                    write_config(self.path, current)
                self._identity = str(current["id"])
        return self._identity

    @property
    def work_dir(self) -> Path:
        return self.path / "work"

    # -- Azure-style accessors -------------------------------------------------------------------
    @property
    def experiments(self) -> dict[str, Experiment]:
        from runyard.core.experiment import Experiment

        return {e.name: Experiment._existing(self, e.name, e.id) for e in self.store.list_experiments()}

    @property
    def models(self) -> dict[str, Model]:
        from runyard.core.model import Model

        return {m.name: Model._from_record(self, m) for m in self.store.list_models(latest=True)}

    def get_run(self, run_id: str) -> Run:
        from runyard.core.run import Run

        return Run.get(self, run_id)

    def iter_runs(self, experiment_name: str | None = None, status: list[str] | None = None) -> Iterator[Run]:
        from runyard.core.run import Run

        for record in self.store.list_runs(experiment_name=experiment_name, status=status):
            yield Run._from_record(self, record)

    def get_details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "tracking_uri": self.tracking_uri,
            "artifact_root": self.artifact_root,
            "studio_url": self.studio_url,
            **self._v1_details(),
        }

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, path={str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def _project_workspace(create: bool = True) -> Path:
    """The local workspace v1 names map to: what from_config() finds from here, else `./.runyard`
    (created when `create`)."""
    env = config.env_workspace()
    if env is not None or os.environ.get(config.ENV_TRACKING_URI, "").startswith(("http://", "https://")):
        return Workspace.from_config().path
    try:
        return locate(Path.cwd()).folder
    except WorkspaceNotFound:
        folder = Path.cwd() / config.DEFAULT_WORKSPACE_DIRNAME
        if create:
            Workspace.create(folder, exist_ok=True)
        return folder
