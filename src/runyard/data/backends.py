"""Where a datastore's bytes live: one small interface over a local folder, the workspace's artifact
store and any fsspec filesystem.

Datasets, datastore transfers, reuse hashing and the engine's input materialisation only talk to a
`StorageBackend`, so a dataset on S3 and one in the workspace folder take the same code path. Paths are
always posix paths relative to the datastore's root and never leave it ('..' is refused).

A local upload is copied into `.runyard-partial/` at the datastore's root and renamed into place when
whole. Listings never descend into that folder, so a file being copied, or left half-copied by a killed
process, is never seen by a dataset, a glob, reuse hashing, a download or a mount. Partial files nobody
has written to for `STALE_PARTIAL_SECONDS` are swept by the next upload to the store.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runyard.errors import InvalidInputError

#: Where a local store's uploads are written before they are renamed into place; never listed.
PARTIAL_DIR = ".runyard-partial"
#: A partial file untouched this long belongs to a process that died (a live copy writes continuously).
STALE_PARTIAL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class StoredFile:
    """One file of a datastore. `mtime_ns` is set for local stores (the hash cache keys on it);
    `version_tag` for remote ones (the ETag, generation or md5 the store reports, when it reports one)."""

    path: str  # posix, relative to the datastore root
    size: int
    mtime_ns: int | None = None
    version_tag: str | None = None


def clean_store_path(path: str) -> str:
    """A datastore-relative posix path without leading '/', './' or trailing '/'; '' is the root.
    InvalidInputError for '..' or NUL: a path may not leave its datastore."""
    if not isinstance(path, str):
        raise InvalidInputError(f"A datastore path must be text, got {type(path).__name__}.")
    text = path.replace("\\", "/")
    if "\x00" in text or ".." in text.split("/"):
        raise InvalidInputError(f"Path {path!r} leaves its datastore: use a path inside it, without '..'.")
    rel = posixpath.normpath(text.strip("/")) if text.strip("/") else ""
    return "" if rel == "." else rel


class StorageBackend(Protocol):
    """The operations runyard needs from a datastore. Implementations: LocalBackend (below),
    the artifact-store and fsspec backends in data/fsspec_backend.py."""

    url: str  # shown in messages: "file:///…", "s3://bucket/prefix (endpoint http://…)"

    def list_files(self, prefix: str = "") -> list[StoredFile]:
        """Every file under `prefix` (a folder, or one file), sorted by path. [] when nothing is there."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The file or folder's path on this machine when the store is a local folder; else None."""
        ...

    def fetch(self, path: str) -> Path:
        """A local, read-only copy of one file (the file itself for local stores; a cached copy for
        remote ones). DataAccessError naming the store when it cannot be read."""
        ...

    def put_file(self, local: Path, path: str, overwrite: bool) -> bool:
        """Write one file, atomically: readers see the old file or the whole new one, never a part.
        Returns False (and writes nothing) when the file exists and not `overwrite`."""
        ...


class LocalBackend:
    """A datastore that is a folder on this machine (workspaceblobstore, file:// stores)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.as_uri() if self.root.is_absolute() else str(self.root)
        self._swept = False
        self._sweep_lock = threading.Lock()

    def _full(self, path: str) -> Path:
        rel = clean_store_path(path)
        return self.root / rel if rel else self.root

    def list_files(self, prefix: str = "") -> list[StoredFile]:
        """Plain-string scandir walk: on a 10k-file folder, Path objects per entry cost about as much
        as the stat calls themselves (bench/bench_datasets.py, warm rehash)."""
        if PARTIAL_DIR in clean_store_path(prefix).split("/"):
            return []
        base = self._full(prefix)
        if base.is_file():
            st = base.stat()
            return [StoredFile(clean_store_path(prefix), st.st_size, st.st_mtime_ns)]
        root = str(self.root).rstrip("/") + "/"
        found: list[StoredFile] = []
        stack = [str(base)]
        while stack:
            folder = stack.pop()
            try:
                entries = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != PARTIAL_DIR:  # uploads in progress (or killed): never data
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found.append(StoredFile(entry.path[len(root) :], st.st_size, st.st_mtime_ns))
        found.sort(key=lambda f: f.path)
        return found

    def local_path(self, path: str) -> Path | None:
        return self._full(path)

    def fetch(self, path: str) -> Path:
        return self._full(path)

    def put_file(self, local: Path, path: str, overwrite: bool) -> bool:
        final = self._full(path)
        if final.exists() and not overwrite:
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        self._sweep_once()
        partials = self.root / PARTIAL_DIR
        partials.mkdir(parents=True, exist_ok=True)
        partial = partials / f"{uuid.uuid4().hex}-{final.name}"
        try:
            shutil.copyfile(local, partial)
            try:
                os.replace(partial, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # the destination folder is another filesystem mounted inside the store: copy next to it,
                # in a partial folder of its own (also never listed), then rename
                near = final.parent / PARTIAL_DIR
                near.mkdir(exist_ok=True)
                moved = near / partial.name
                try:
                    shutil.copyfile(partial, moved)
                    os.replace(moved, final)
                finally:
                    moved.unlink(missing_ok=True)
        finally:
            partial.unlink(missing_ok=True)
        return True

    def _sweep_once(self) -> None:
        """Remove partial files of uploads that died (untouched for STALE_PARTIAL_SECONDS); once per
        backend, i.e. once per upload call."""
        with self._sweep_lock:
            if self._swept:
                return
            self._swept = True
        sweep_partials(self.root / PARTIAL_DIR)


def sweep_partials(folder: Path, older_than: float = STALE_PARTIAL_SECONDS) -> list[str]:
    """Delete the files in `folder` not modified for `older_than` seconds; returns their names. A file
    another process removes meanwhile is simply skipped."""
    cutoff = time.time() - older_than
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:
            continue
    return removed
