"""Datastore: a named folder inside the workspace's artifact store.

In Azure ML a datastore is a registered storage account container; every workspace has
`workspaceblobstore`, where run outputs and pipeline data land. runyard keeps that one name for the
folder `datastores/workspaceblobstore/` under the workspace's artifact root, which is also where pipeline
outputs already go (`azureml/<step run id>/<output name>`). Registering further datastores, uploads and
downloads arrive with issue 12; until then asking for another name says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import missing_attribute, v1_keywords
from runyard.data.backends import LocalBackend, StorageBackend
from runyard.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: v1's name for the default datastore (`azureml.core.workspace.WORKSPACE_DEFAULT_BLOB_STORE_NAME`).
DEFAULT_DATASTORE = "workspaceblobstore"
_REGISTER_HINT = (
    "Registering datastores (Datastore.register_azure_blob_container, register_azure_file_share, ...) "
    "arrives with issue 12; until then use 'workspaceblobstore'."
)


#: v1's AzureBlobDatastore / AbstractDatastore methods that datastores registered in issue 12 bring.
_TRANSFER_METHODS = frozenset(
    {"upload", "upload_files", "download", "path", "as_mount", "as_download", "as_upload", "unregister"}
)


def datastore_folder(name: str) -> str:
    """The artifact-store path of a datastore's root (relative to the artifact root)."""
    return f"datastores/{name}"


@v1_keywords
class Datastore:
    """The workspace's default datastore, `workspaceblobstore` (a folder of the artifact store)."""

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        name = DEFAULT_DATASTORE if name is None else name
        if not isinstance(name, str) or name.lower() != DEFAULT_DATASTORE:
            raise NotFoundError(
                f"No datastore {name!r} in workspace {workspace.name!r}: this runyard has only "
                f"{DEFAULT_DATASTORE!r}. {_REGISTER_HINT}"
            )
        self._workspace = workspace
        self._name = DEFAULT_DATASTORE  # v1 datastore names are case-insensitive

    def __getattr__(self, name: str) -> Any:
        """v1's blob datastore methods (upload, upload_files, download, path, as_mount, ...) say which
        issue brings them, rather than a bare AttributeError in the middle of a ported notebook."""
        if name in _TRANSFER_METHODS:
            raise AttributeError(
                f"Datastore.{name} is not available in runyard yet: datastore uploads, downloads and data "
                "references arrive with issue 12 (see docs/v1-surface.md). Until then, pass files to a run "
                "with ScriptRunConfig(source_directory=...) or run.upload_file(...)."
            )
        return missing_attribute(self, name)

    @staticmethod
    def get(workspace: Workspace, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Workspace) -> Datastore:
        return workspace.get_default_datastore()

    @property
    def name(self) -> str:
        return self._name

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def datastore_type(self) -> str:
        return "AzureBlob"

    @property
    def container_name(self) -> str:
        """v1 names the blob container; here it is the folder that holds the datastore's files."""
        return datastore_folder(self._name)

    @property
    def account_name(self) -> str:
        """v1's storage account; locally the workspace's artifact root plays that part."""
        return self._workspace.artifact_root

    def local_path(self, path_on_datastore: str = "") -> Path:
        """The local folder of `path_on_datastore` (relative to the datastore; it cannot leave it)."""
        rel = path_on_datastore.strip("/")
        if any(part == ".." for part in rel.split("/")):
            raise InvalidInputError(
                f"Path {path_on_datastore!r} leaves datastore {self._name!r}: use a path inside it, without '..'."
            )
        folder = datastore_folder(self._name)
        return Path(self._workspace.artifacts.local_path(f"{folder}/{rel}" if rel else folder))

    def backend(self) -> StorageBackend:
        """Where this datastore's bytes live (data/backends.py)."""
        return LocalBackend(self.local_path(""))

    def set_as_default(self) -> None:
        self._workspace.set_default_datastore(self._name)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Datastore) and other._name == self._name and other._workspace == self._workspace
        )

    def __hash__(self) -> int:
        return hash((self._name, self._workspace))

    def __repr__(self) -> str:
        return (
            f"Datastore(name={self._name!r}, datastore_type='AzureBlob', workspace={self._workspace.name!r})"
        )
