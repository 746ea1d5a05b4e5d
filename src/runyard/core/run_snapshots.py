"""A run's snapshot (the code it ran) and its outputs folder: take_snapshot, get_snapshot_id,
restore_snapshot, and the upload of an interactive run's outputs when it ends. Mixed into Run.

Snapshots are the content-addressed ones pipelines use (store/snapshots.py): each distinct file is
stored once per workspace, and a run records the id of its latest snapshot in its data
(`snapshotId`), which is what v1's `get_snapshot_id()` returns.

The outputs folder a run uploads when it ends is the one the process that created the run chose
(`remember_outputs`), kept in memory: the copy in the run's data is for readers only. A folder read back
from the store could have been changed by someone else, and the upload would hand them a folder of this
machine (docs/security.md).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import InvalidInputError, SnapshotException

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.store import RunRecord

#: The key in a run's data that names its snapshot.
SNAPSHOT_KEY = "snapshotId"
#: The key in an interactive run's data that names the local folder uploaded as outputs/ when it ends.
OUTPUTS_KEY = "outputsDirectory"

#: run id -> the outputs folder this process chose for it (start_logging(outputs=), child_run(outputs=)).
_CHOSEN_OUTPUTS: dict[str, str] = {}


def remember_outputs(run_id: str, folder: str | None) -> None:
    """Record, in this process only, the outputs folder a run this process created uploads when it ends."""
    if folder is not None:
        _CHOSEN_OUTPUTS[run_id] = folder


def store_snapshot(workspace: Workspace, file_or_folder: str | os.PathLike[str]) -> str:
    """Store a file, or a folder (with its .amlignore/.gitignore rules and v1's limits), as a snapshot;
    returns its id."""
    from runyard.core.snapshot import snapshot_files  # pathspec: not for a job that only logs
    from runyard.store.snapshots import SnapshotStore

    source = Path(file_or_folder).expanduser()
    if source.is_file():
        folder, files = source.parent, [Path(source.name)]
    elif source.is_dir():
        folder, files = source, snapshot_files(source)
    else:
        raise InvalidInputError(f"take_snapshot: {source} is neither a file nor a folder.")
    return SnapshotStore(workspace.artifacts).save(folder, files).id


class RunSnapshotMixin:
    workspace: Workspace
    _record: RunRecord

    if TYPE_CHECKING:

        @property
        def id(self) -> str: ...

        def upload_folder(self, name: str, path: Any, datastore_name: str | None = None) -> list[str]: ...

    def take_snapshot(self, file_or_folder_path: str | os.PathLike[str]) -> str:
        """Save a file or folder as this run's snapshot; returns the snapshot id (get_snapshot_id)."""
        snapshot_id = store_snapshot(self.workspace, file_or_folder_path)
        self._record = self.workspace.store.update_run_data(self.id, {SNAPSHOT_KEY: snapshot_id})
        return snapshot_id

    def get_snapshot_id(self) -> str | None:
        """The id of the run's latest snapshot, or None when it has none."""
        data = self.workspace.store.get_run(self.id).data
        value = data.get(SNAPSHOT_KEY)
        return None if value is None else str(value)

    def restore_snapshot(
        self, snapshot_id: str | None = None, path: str | os.PathLike[str] | None = None
    ) -> str:
        """Write a snapshot (the run's latest unless `snapshot_id`) as a zip, `<path>/<snapshot_id>.zip`
        (path defaults to the current folder; a path ending in .zip names the file), and return its path."""
        snapshot_id = snapshot_id or self.get_snapshot_id()
        if not snapshot_id:
            raise SnapshotException(
                f"Run {self.id} has no snapshot to restore. Interactive runs snapshot their "
                "snapshot_directory (start_logging(snapshot_directory='.')); save one with "
                "run.take_snapshot(path), or pass snapshot_id=."
            )
        target = Path(path if path is not None else ".")
        if target.suffix.lower() != ".zip":
            target = target / f"{snapshot_id}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        import zipfile

        from runyard.store.snapshots import SnapshotStore

        store = SnapshotStore(self.workspace.artifacts)
        snapshot = store.load(snapshot_id)
        partial = target.with_name(f".{target.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel, sha in sorted(snapshot.files.items()):
                data = self.workspace.artifacts.read_bytes(store._blob(sha))
                if hashlib.sha256(data).hexdigest() != sha:
                    raise SnapshotException(
                        f"File {rel!r} of snapshot {snapshot_id[:12]} was changed after it was saved; "
                        "the snapshot cannot be restored."
                    )
                archive.writestr(rel, data)
        os.replace(partial, target)
        return str(target)

    def _upload_outputs(self) -> None:
        """An interactive run's outputs folder (start_logging(outputs=...)) becomes outputs/ in the run,
        as a submitted run's does. Only the folder this process chose is uploaded, never one named by
        the stored record alone (see the module docstring)."""
        folder = _CHOSEN_OUTPUTS.get(self.id)
        if isinstance(folder, str) and folder and Path(folder).is_dir():
            self.upload_folder("outputs", folder)
