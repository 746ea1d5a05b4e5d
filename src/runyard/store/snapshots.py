"""Content-addressed snapshots of source directories: each distinct file stored once.

A snapshot is a manifest {relative path: sha256}; its id is the sha256 of the manifest's canonical
JSON, so the id of a source directory changes exactly when a file name or a file's bytes change.
Blobs live at snapshots/blobs/<aa>/<sha256>, manifests at snapshots/manifests/<id>.json.

Both addresses are checked on the way out: `load` refuses a manifest whose content does not hash to
its id, and `materialize` refuses a blob whose bytes do not hash to its name. Anyone who may write
files to the artifact store (a server's write token) could otherwise replace the code of a pipeline
someone else submitted, because the graph only pins the snapshot id (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import NotFoundError, SnapshotIntegrityError

if TYPE_CHECKING:
    from runyard.store.artifacts import ArtifactStore
    from runyard.store.rest_artifacts import RestArtifactStore


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def manifest_id(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    id: str
    files: dict[str, str]


class SnapshotStore:
    def __init__(self, artifacts: ArtifactStore | RestArtifactStore) -> None:
        self.artifacts = artifacts

    @staticmethod
    def _blob(sha: str) -> str:
        return f"snapshots/blobs/{sha[:2]}/{sha}"

    def save(self, source_dir: Path, files: list[Path]) -> Snapshot:
        manifest: dict[str, str] = {}
        for rel in files:
            sha = file_sha256(source_dir / rel)
            manifest[rel.as_posix()] = sha
            if not self.artifacts.exists(self._blob(sha)):
                self.artifacts.put_file(self._blob(sha), source_dir / rel)
        snap_id = manifest_id(manifest)
        name = f"snapshots/manifests/{snap_id}.json"
        if not self.artifacts.exists(name):
            self.artifacts.put_bytes(name, json.dumps(manifest, sort_keys=True, indent=1).encode())
        return Snapshot(snap_id, manifest)

    def load(self, snap_id: str) -> Snapshot:
        """The manifest of `snap_id`, after checking that its content hashes to that id."""
        if not _SHA256.match(snap_id):
            raise SnapshotIntegrityError(f"{snap_id!r} is not a snapshot id (a sha256 in hex).")
        try:
            data = self.artifacts.read_bytes(f"snapshots/manifests/{snap_id}.json")
        except NotFoundError:
            raise NotFoundError(f"Snapshot {snap_id} is missing from {self.artifacts.root}.") from None
        try:
            files = json.loads(data)
        except ValueError:
            files = None
        if not isinstance(files, dict) or manifest_id(files) != snap_id:
            raise SnapshotIntegrityError(
                f"Snapshot {snap_id[:12]} was changed after it was saved: its manifest no longer matches its "
                "id. Nothing from it will run; submit the pipeline again to store a fresh snapshot."
            )
        for rel, sha in files.items():
            normal = posixpath.normpath(rel) if isinstance(rel, str) else ""
            if (
                not isinstance(sha, str)
                or not _SHA256.match(sha)
                or normal != rel
                or rel.startswith(("/", "../"))
                or rel in (".", "..")
                or "\x00" in rel
            ):
                raise SnapshotIntegrityError(
                    f"Snapshot {snap_id[:12]} lists {rel!r}: {sha!r}; a manifest maps relative file names "
                    "inside the source folder to sha256 hashes. Nothing from it will run."
                )
        return Snapshot(snap_id, files)

    def materialize(self, snap_id: str, dest: Path) -> Snapshot:
        """Copy a snapshot's files into `dest` (copies, not links: a script may change its own files).

        Each copy is hashed after it is written, so what is checked is exactly what will run."""
        snap = self.load(snap_id)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, sha in snap.files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.artifacts.is_local:
                shutil.copyfile(self.artifacts.local_path(self._blob(sha)), target)
            else:
                self.artifacts.get_file(self._blob(sha), target)
            actual = file_sha256(target)
            if actual != sha:
                target.unlink()
                raise SnapshotIntegrityError(
                    f"File {rel!r} of snapshot {snap_id[:12]} was changed after it was saved (its blob "
                    f"hashes to {actual[:12]}, not {sha[:12]}). Nothing from this snapshot will run; submit "
                    "the pipeline again to store a fresh snapshot."
                )
        return snap
