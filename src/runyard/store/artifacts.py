"""ArtifactStore: the bytes of runs (logs, outputs, uploads) and models, behind fsspec.

The root is a local folder today; any fsspec URL (s3://bucket/prefix) can stand in later without
changing callers, because callers only speak in paths relative to the root. Every write is atomic:
a reader never sees half a file.

Jobs write into their run's folder directly, so they can leave symbolic links there (outputs/x ->
/etc/passwd, or a link to a folder). Every path is resolved before use and refused if it leads out of
its container: the run's folder for runs/<id>/..., a step's output folder for
datastores/<store>/azureml/<id>/..., the artifact root otherwise. Listings never show links. The API,
the studio and the engine all go through `_full`, so they share this one check.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from runyard.errors import InvalidInputError, NotFoundError


def clean_relpath(name: str) -> str:
    """Normalise a user-given artifact path and refuse anything that escapes its folder."""
    raw = str(name).replace("\\", "/")
    norm = posixpath.normpath(raw)
    if not raw or raw.startswith("/") or norm == ".." or norm.startswith("../") or norm == ".":
        raise InvalidInputError(
            f"Artifact path {name!r} is not a relative path inside the run's folder; "
            "use a name like 'outputs/model.pkl'."
        )
    return norm


def put_tree(put_file: Callable[[str, Path], None], rel: str, src_dir: str | os.PathLike[str]) -> list[str]:
    """Store a folder's files under `rel` one `put_file` at a time; returns the artifact paths written."""
    written = []
    src = Path(src_dir)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        name = posixpath.join(clean_relpath(rel), path.relative_to(src).as_posix())
        put_file(name, path)
        written.append(name)
    return written


class ArtifactStore:
    def __init__(self, root: str) -> None:
        import fsspec  # here: a job that only logs never opens an artifact store (tests/test_job_imports.py)

        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = self.fs.protocol in ("file", "local", ("file", "local"))

    def _full(self, rel: str) -> str:
        rel = clean_relpath(rel)
        full = posixpath.join(self._base, rel)
        if self.is_local:
            self._confine(rel, full)
        return full

    def _container(self, rel: str) -> str:
        """The folder `rel` must stay in once every link on the way is resolved."""
        parts = rel.split("/")
        depth = (
            2 if parts[0] == "runs" else 4 if parts[0] == "datastores" and parts[2:3] == ["azureml"] else 0
        )
        return posixpath.join(self._base, *parts[:depth]) if depth and len(parts) >= depth else self._base

    def _confine(self, rel: str, full: str) -> None:
        root = os.path.realpath(self._base)
        container = os.path.realpath(self._container(rel))
        real = os.path.realpath(full)
        if not _inside(container, root) or not _inside(real, container):
            shown = self._container(rel)[len(self._base) :].lstrip("/") or "the artifact root"
            raise InvalidInputError(
                f"Artifact path {rel!r} leads outside {shown} through a symbolic link, so it is not served or "
                "written. runyard never follows links that leave a run's folder; replace the link with a "
                "copy of the file if it should be kept."
            )

    def local_path(self, rel: str) -> Path:
        """A real path for code that must hand a file to a process (only for a local root)."""
        if not self.is_local:
            raise NotImplementedError("local_path needs a local artifact root")
        return Path(self._full(rel))

    def fetch(self, rel: str) -> Path:
        """The local path of `rel` (for a remote store: downloaded into its mirror first)."""
        return self.local_path(rel)

    def put_bytes(self, rel: str, data: bytes) -> None:
        full = self._full(rel)
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        tmp = f"{full}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        self.fs.mv(tmp, full)

    @contextlib.contextmanager
    def writer(self, rel: str) -> Iterator[BinaryIO]:
        """A file to write `rel` through piece by piece (a streamed upload): it appears at `rel` in one
        rename when the block ends, and not at all if the block raises."""
        full = self._full(rel)
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        tmp = f"{full}.tmp-{uuid.uuid4().hex[:8]}"
        fh = self.fs.open(tmp, "wb")
        try:
            yield fh
            fh.close()
            self._full(rel)  # the folder may have been swapped for a link meanwhile
            self.fs.mv(tmp, full)
        except BaseException:
            fh.close()
            self.fs.rm(tmp)
            raise

    def open_read(self, rel: str) -> tuple[BinaryIO, int]:
        """An open file and its size, for serving `rel` in pieces (the caller closes it)."""
        full = self._full(rel)
        if not self.fs.isfile(full):
            raise NotFoundError(f"No file {rel!r} in the workspace's artifacts.")
        fh = self.fs.open(full, "rb")
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        return fh, int(size)

    def put_file(self, rel: str, src: str | os.PathLike[str]) -> None:
        full = self._full(rel)
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        tmp = f"{full}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.put_file(os.fspath(src), tmp)
        self.fs.mv(tmp, full)

    def put_dir(self, rel: str, src_dir: str | os.PathLike[str]) -> list[str]:
        return put_tree(self.put_file, rel, src_dir)

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._full(rel)))

    def list(self, prefix: str) -> list[str]:
        """Relative paths of the files under `prefix` (itself a relative folder), sorted. Symbolic links
        are left out: a listing never shows what a link points at."""
        base = self._full(prefix)
        if self.is_local:
            return _walk_local(base)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        start = len(base.rstrip("/")) + 1
        return sorted(p[start:] for p in found if ".tmp-" not in posixpath.basename(p))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self._full(rel)))

    def read_bytes(self, rel: str, offset: int = 0, length: int | None = None) -> bytes:
        full = self._full(rel)
        if not self.fs.exists(full):
            raise NotFoundError(f"No file {rel!r} in the artifact store at {self.root}.")
        with self.fs.open(full, "rb") as fh:
            fh.seek(offset)
            return fh.read() if length is None else fh.read(length)

    def get_file(self, rel: str, dest: str | os.PathLike[str]) -> None:
        full = self._full(rel)
        if not self.fs.exists(full):
            raise NotFoundError(f"No file {rel!r} in the artifact store at {self.root}.")
        dest_path = Path(dest)
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest_path.parent, prefix=f".{dest_path.name}.")
        os.close(fd)
        self.fs.get_file(full, tmp)
        os.replace(tmp, dest_path)

    def copy_tree_local(self, rel: str, dest: Path) -> None:
        """Copy a stored folder (or file) to a local destination, e.g. to materialise a model."""
        full = self._full(rel)
        if self.is_local:
            if Path(full).is_dir():  # links stay behind: a copy must not carry files from outside
                shutil.copytree(full, dest, dirs_exist_ok=True, ignore=_links)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(full, dest)
            return
        self.fs.get(full, str(dest), recursive=True)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _walk_local(base: str) -> list[str]:
    """Files under a local folder, never descending into or listing symbolic links."""
    if os.path.islink(base) or not os.path.isdir(base):
        return []
    found = []
    for folder, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        rel_folder = os.path.relpath(folder, base)
        for name in files:
            if ".tmp-" in name or os.path.islink(os.path.join(folder, name)):
                continue
            found.append(name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/"))
    return sorted(found)


def _links(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if os.path.islink(os.path.join(folder, n))}
