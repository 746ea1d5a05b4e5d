"""Datastore: v1's named storage location, backed by fsspec.

Every workspace has two built-in datastores, as every v1 workspace does: `workspaceblobstore` (the default),
the folder `datastores/workspaceblobstore/` of its artifact store (where pipeline outputs land,
`azureml/<step run id>/<output name>`), and `workspacefilestore` (v1's Azure file share;
`Datastore(ws, "workspacefilestore")` in Microsoft's pipeline how-tos), the folder
`datastores/workspacefilestore/`. Both are served by the server for a server workspace and are never
records. Further stores are registered as records of an fsspec URL (az://, abfs://, s3://, gs://,
file://) and their non-secret options; credentials go to the workspace secrets file or come from the
environment (data/secrets.py). Registration never touches the network: a store that cannot be reached, or
whose fsspec package is missing, says so on first use. Names are case-insensitive, as in v1.

Transfers (upload, upload_files, download) run in parallel and are atomic per file (data/transfer.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.data import secrets
from runyard.data.backends import LocalBackend, StorageBackend, clean_store_path
from runyard.data.data_reference import DataReference
from runyard.data.fsspec_backend import ArtifactBackend, FsspecBackend
from runyard.data.transfer import download_from, upload_to
from runyard.errors import ConflictError, DataAccessError, DatastoreNotFound, InvalidInputError
from runyard.store.data_rules import BUILTIN_DATASTORES
from runyard.store.records import DatastoreRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: v1's name for the default datastore (`azureml.core.workspace.WORKSPACE_DEFAULT_BLOB_STORE_NAME`).
DEFAULT_DATASTORE = "workspaceblobstore"
#: v1's other built-in datastore (`azureml.core.workspace.WORKSPACE_DEFAULT_FILE_STORE_NAME`, an Azure file
#: share there; here a folder of the artifact store like workspaceblobstore). Never the default unless set.
FILE_DATASTORE = "workspacefilestore"
#: v1's datastore_type of each built-in store.
BUILTIN_TYPES = {DEFAULT_DATASTORE: "AzureBlob", FILE_DATASTORE: "AzureFile"}
_NO_AZURE = "runyard reaches the storage account with the registered credentials; there is no Azure workspace"
_NO_VALIDATION = "registration never touches the network; the first upload, download or listing checks access"


def datastore_folder(name: str) -> str:
    """The artifact-store path of a datastore's root (relative to the artifact root)."""
    return f"datastores/{name}"


def is_builtin(name: object) -> bool:
    """Whether `name` is one of the built-in datastores (case-insensitive)."""
    return isinstance(name, str) and name.lower() in BUILTIN_DATASTORES


def builtin_datastores(workspace: Workspace) -> dict[str, Datastore]:
    """The built-in datastores of `workspace` by name: what ws.datastores lists before the records."""
    return {name: Datastore(workspace, name) for name in BUILTIN_DATASTORES}


def _azure_host(account_name: str, service: str, endpoint: str | None) -> dict[str, Any]:
    """adlfs's account_host for a cloud other than Azure's public one (endpoint='core.chinacloudapi.cn')."""
    if endpoint and endpoint != "core.windows.net":
        return {"account_host": f"{account_name}.{service}.{endpoint}"}
    return {}


@v1_keywords
class Datastore:
    """A named storage location of a workspace: a built-in one ('workspaceblobstore', 'workspacefilestore')
    or a registered fsspec store."""

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        if name is None:
            name = workspace.store.get_default_datastore_name() or DEFAULT_DATASTORE
        if not isinstance(name, str):
            raise InvalidInputError(f"A datastore name must be text, got {type(name).__name__}.")
        self._workspace = workspace
        self._record: DatastoreRecord | None = None
        if is_builtin(name):
            self._name = name.lower()  # v1 datastore names are case-insensitive
        else:
            self._record = workspace.store.get_datastore(name)  # DatastoreNotFound lists the known names
            self._name = self._record.name

    @classmethod
    def _of(cls, workspace: Workspace, record: DatastoreRecord) -> Datastore:
        store = cls.__new__(cls)
        store._workspace, store._record, store._name = workspace, record, record.name
        return store

    # -- finding ----------------------------------------------------------------------------------
    @staticmethod
    def get(workspace: Workspace, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Workspace) -> Datastore:
        return workspace.get_default_datastore()

    # -- registering -------------------------------------------------------------------------------
    @staticmethod
    def _register(
        workspace: Workspace,
        name: str,
        kind: str,
        url: str,
        options: Mapping[str, Any],
        overwrite: bool,
        data: Mapping[str, Any],
    ) -> Datastore:
        """Save the record and its secrets together: a failure leaves the previous state (no record
        without its secrets, no secrets of a store that was not registered)."""
        # the name, URL and options are checked by the store (store/validation.py) when saving
        plain, secret = secrets.split_options(f"Datastore {name!r}", options)
        if is_builtin(name):
            raise InvalidInputError(
                f"{name!r} is a built-in datastore of every workspace ({', '.join(BUILTIN_DATASTORES)}) and "
                "cannot be registered; register your store under another name."
            )
        if not overwrite and isinstance(name, str):
            try:
                workspace.store.get_datastore(name)
            except DatastoreNotFound:
                pass
            else:
                raise ConflictError(
                    f"A datastore named {name!r} is already registered in workspace {workspace.name!r}. Pass "
                    "overwrite=True to replace it, or choose another name."
                )
        record = DatastoreRecord(
            name=name,
            kind=kind,
            url=url,
            options=plain,
            secret_names=tuple(sorted(secret)),
            data={k: v for k, v in data.items() if v is not None},
        )
        before = secrets.save_secrets(workspace.path, name, secret)
        try:
            saved = workspace.store.save_datastore(record, overwrite=overwrite)
        except BaseException:
            secrets.restore_secrets(workspace.path, name, secret, before)
            raise
        return Datastore._of(workspace, saved)

    @staticmethod
    @v1_ignores(
        create_if_not_exists="runyard does not create Azure containers; create it with the Azure CLI or portal",
        skip_validation=_NO_VALIDATION,
        blob_cache_timeout="files are read through fsspec and runyard's local cache, not a blobfuse mount",
        grant_workspace_access=_NO_AZURE,
        subscription_id=_NO_AZURE,
        resource_group=_NO_AZURE,
    )
    def register_azure_blob_container(
        workspace: Workspace,
        datastore_name: str,
        container_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
        blob_cache_timeout: int | None = None,
        grant_workspace_access: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
    ) -> Datastore:
        """An Azure blob container (fsspec az:// through adlfs: pip install 'runyard[azure]')."""
        options = {"account_name": account_name, "account_key": account_key, "sas_token": sas_token}
        data = {"account_name": account_name, "container_name": container_name, "protocol": protocol}
        return Datastore._register(
            workspace,
            datastore_name,
            "AzureBlob",
            f"az://{container_name}",
            {**options, **_azure_host(account_name, "blob", endpoint)},
            overwrite,
            {**data, "endpoint": endpoint},
        )

    @staticmethod
    @v1_ignores(
        resource_url="adlfs signs in with tenant_id/client_id/client_secret directly",
        authority_url="adlfs signs in with tenant_id/client_id/client_secret directly",
        subscription_id=_NO_AZURE,
        resource_group=_NO_AZURE,
        grant_workspace_access=_NO_AZURE,
    )
    def register_azure_data_lake_gen2(
        workspace: Workspace,
        datastore_name: str,
        filesystem: str,
        account_name: str,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        resource_url: str | None = None,
        authority_url: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        grant_workspace_access: bool = False,
    ) -> Datastore:
        """An ADLS Gen2 filesystem (fsspec abfs:// through adlfs: pip install 'runyard[azure]')."""
        options = {
            "account_name": account_name,
            "tenant_id": tenant_id,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        data = {"account_name": account_name, "container_name": filesystem, "protocol": protocol}
        return Datastore._register(
            workspace,
            datastore_name,
            "AzureDataLakeGen2",
            f"abfs://{filesystem}",
            {**options, **_azure_host(account_name, "dfs", endpoint)},
            overwrite,
            {**data, "endpoint": endpoint},
        )

    @staticmethod
    @v1_ignores(
        create_if_not_exists="runyard does not create Azure file shares",
        skip_validation=_NO_VALIDATION,
    )
    def register_azure_file_share(
        workspace: Workspace,
        datastore_name: str,
        file_share_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
    ) -> Datastore:
        """Recorded so v1 code registers without failing; fsspec has no Azure Files backend, so using it
        raises a DataAccessError that suggests a blob container or register_fsspec."""
        data = {
            "account_name": account_name,
            "container_name": file_share_name,
            "protocol": protocol,
            "endpoint": endpoint,
        }
        options = {"account_name": account_name, "account_key": account_key, "sas_token": sas_token}
        return Datastore._register(
            workspace, datastore_name, "AzureFile", f"az://{file_share_name}", options, overwrite, data
        )

    @staticmethod
    def register_fsspec(
        workspace: Workspace, name: str, url: str, overwrite: bool = False, **storage_options: Any
    ) -> Datastore:
        """runyard's own: any fsspec URL with its storage options, e.g.
        `register_fsspec(ws, "raw", "s3://bucket/raw", key=..., secret=..., client_kwargs={"endpoint_url": ...})`.
        Credentials (key, secret, token, account_key, sas_token, ...) go to the secrets file."""
        if not isinstance(url, str) or "://" not in url:
            raise InvalidInputError(
                f"register_fsspec needs an fsspec URL such as 's3://bucket/prefix' or 'file:///srv/data', "
                f"not {url!r}."
            )
        return Datastore._register(
            workspace, name, "fsspec", url.rstrip("/") or url, storage_options, overwrite, {}
        )

    def unregister(self) -> None:
        """Remove the registration and its secrets (the data stays where it is)."""
        if self._record is None:
            raise InvalidInputError(
                f"'{self._name}' is a built-in datastore of the workspace; it cannot be unregistered."
            )
        self._workspace.store.delete_datastore(self._name)
        secrets.save_secrets(self._workspace.path, self._name, {})

    def set_as_default(self) -> None:
        self._workspace.set_default_datastore(self._name)

    # -- properties ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def datastore_type(self) -> str:
        return self._record.kind if self._record is not None else BUILTIN_TYPES.get(self._name, "AzureBlob")

    @property
    def container_name(self) -> str:
        """v1 names the blob container; for a built-in store, the folder that holds its files."""
        if self._record is None:
            return datastore_folder(self._name)
        return str(self._record.data.get("container_name") or self._record.url.partition("://")[2])

    @property
    def account_name(self) -> str | None:
        """v1's storage account; for a built-in store, the workspace's artifact root plays that part."""
        if self._record is None:
            return self._workspace.artifact_root
        return self._record.data.get("account_name")

    @property
    def url(self) -> str:
        """runyard's own: the fsspec URL of the store's root."""
        return self._record.url if self._record is not None else self.backend().url

    # -- bytes ----------------------------------------------------------------------------------------
    def local_path(self, path_on_datastore: str = "") -> Path:
        """The local folder of `path_on_datastore` (it cannot leave the store), for stores that are
        folders on this machine: the built-in stores and file:// stores."""
        rel = path_on_datastore.strip("/")
        if any(part == ".." for part in rel.replace("\\", "/").split("/")):
            raise InvalidInputError(
                f"Path {path_on_datastore!r} leaves datastore {self._name!r}: use a path inside it, without '..'."
            )
        if self._record is None:
            folder = datastore_folder(self._name)
            return Path(self._workspace.artifacts.local_path(f"{folder}/{rel}" if rel else folder))
        root = self._file_root()
        if root is None:
            raise DataAccessError(
                f"Datastore {self._name!r} ({self._record.url}) is not a folder on this machine; read it with "
                "download(), a dataset, or Datastore.backend()."
            )
        return root / rel if rel else root

    def _file_root(self) -> Path | None:
        assert self._record is not None
        scheme, _, rest = self._record.url.partition("://")
        return Path(rest) if scheme.lower() == "file" else None

    def backend(self) -> StorageBackend:
        """Where this datastore's bytes live (data/backends.py)."""
        if self._record is None:
            return ArtifactBackend(self._workspace, self._name)
        record = self._record
        if record.kind == "AzureFile":
            raise DataAccessError(
                f"Datastore {self._name!r} is an Azure file share, and fsspec has no Azure Files backend, so "
                "runyard cannot read or write it. Register the data as a blob container "
                "(Datastore.register_azure_blob_container) or any fsspec URL (Datastore.register_fsspec)."
            )
        root = self._file_root()
        if root is not None:
            return LocalBackend(root)
        options = {
            **record.options,
            **secrets.resolve_secrets(self._workspace.path, self._name, record.secret_names),
        }
        cache = Path(self._workspace.path) / "cache" / "datastores" / self._name
        return FsspecBackend(record.url, options, cache_dir=cache)

    def upload(
        self,
        src_dir: str | os.PathLike[str],
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload every file under `src_dir` to `target_path` (the store's root by default). Existing
        files are skipped unless `overwrite`; each file appears whole or not at all."""
        source = Path(src_dir)
        if not source.is_dir():
            hint = " (it is a file: use upload_files([...]))" if source.is_file() else ""
            raise InvalidInputError(
                f"upload: {str(source)!r} is not a folder{hint}; pass the folder to upload."
            )
        files = sorted(p for p in source.rglob("*") if p.is_file())
        self._put(
            [(p, p.relative_to(source).as_posix()) for p in files], target_path, overwrite, show_progress
        )
        return DataReference(self, path_on_datastore=target_path)

    def upload_files(
        self,
        files: Iterable[str | os.PathLike[str]],
        relative_root: str | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload the given files; each lands at `target_path/<its path below relative_root>` (by default
        below the files' common folder)."""
        paths = [Path(f).absolute() for f in ([files] if isinstance(files, str | os.PathLike) else files)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise InvalidInputError(
                f"upload_files: not a file: {', '.join(missing[:5])}. Pass existing files."
            )
        if not paths:
            return DataReference(self, path_on_datastore=target_path)
        root = (
            Path(relative_root).absolute()
            if relative_root
            else Path(os.path.commonpath([p.parent for p in paths]))
        )
        outside = [str(p) for p in paths if not p.is_relative_to(root)]
        if outside:
            raise InvalidInputError(
                f"upload_files: relative_root {str(root)!r} is not a folder above {outside[0]!r}; pass a "
                "relative_root that contains every file, or leave it out."
            )
        self._put([(p, p.relative_to(root).as_posix()) for p in paths], target_path, overwrite, show_progress)
        return DataReference(self, path_on_datastore=target_path)

    def _put(self, pairs: list[tuple[Path, str]], target: str | None, overwrite: bool, show: bool) -> None:
        upload_to(self.backend(), self._name, pairs, clean_store_path(target or ""), overwrite, show)

    def download(
        self,
        target_path: str | os.PathLike[str],
        prefix: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> int:
        """Download the files under `prefix` (everything by default) to `target_path/<path on datastore>`.
        Files already there are skipped unless `overwrite`, as in v1. Returns how many were downloaded."""
        return download_from(self.backend(), self._name, Path(target_path), prefix, overwrite, show_progress)

    # -- data references ----------------------------------------------------------------------------
    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        return DataReference(self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> DataReference:
        return DataReference(self).as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return DataReference(self).as_download(path_on_compute)

    def as_upload(self, path_on_compute: str | None = None) -> DataReference:
        return DataReference(self).as_upload(path_on_compute)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Datastore) and other._name == self._name and other._workspace == self._workspace
        )

    def __hash__(self) -> int:
        return hash((self._name, self._workspace))

    def __repr__(self) -> str:
        return (
            f"Datastore(name={self._name!r}, datastore_type={self.datastore_type!r}, "
            f"workspace={self._workspace.name!r})"
        )
