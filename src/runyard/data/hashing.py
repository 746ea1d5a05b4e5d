"""Content hashes of datastore files, cheap when nothing changed.

Registration records the sha256 of every file a dataset version resolves to, and step reuse fingerprints
dataset and DataReference inputs by their content, so that a changed file behind an unchanged path reruns
the step. Hashing is lazy and stat-cached (store/hash_cache.py): a file whose (path, size, mtime_ns) is
unchanged is not read again, so rehashing an unchanged folder costs one listing plus one bulk cache
lookup. Cold hashes run on a thread pool (hashlib releases the GIL on big buffers).

Remote files without an mtime are identified by the store's version tag ("etag:<tag>") when it reports
one: two different bytes never share an ETag, and reading them back just to hash them would download
the whole dataset. Without either, the file is fetched (through the backend's cache) and hashed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.backends import StorageBackend, StoredFile, clean_store_path
from runyard.errors import DatastoreNotFound, NotFoundError
from runyard.store.data_rules import content_hash as content_hash  # one definition, also the store's
from runyard.store.hash_cache import HashCache
from runyard.store.snapshots import file_sha256

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

HASH_THREADS = min(16, (os.cpu_count() or 2) * 2)
CACHE_FILE = Path("cache") / "file-hashes.sqlite3"


@dataclass(frozen=True, slots=True)
class ResolvedFile:
    """One file a dataset resolved to. `datastore` is the datastore's name, or "" for url/local sources,
    where `path` is then the URL or the absolute local path."""

    datastore: str
    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"datastore": self.datastore, "path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedFile:
        return cls(str(data["datastore"]), str(data["path"]), int(data["size"]), str(data["sha256"]))


def hash_cache(ws: Workspace) -> HashCache:
    """The workspace's stat cache (in its local folder, also for a server workspace)."""
    return HashCache(Path(ws.path) / CACHE_FILE)


def datastore_backend(ws: Workspace, name: str) -> StorageBackend:
    """The backend of datastore `name`; DatastoreNotFound naming the workspace when there is none."""
    from runyard.data.datastore import Datastore

    try:
        return Datastore.get(ws, name).backend()
    except DatastoreNotFound:
        raise
    except NotFoundError as exc:
        raise DatastoreNotFound(str(exc)) from None


def _hash_paths(paths: Sequence[Path]) -> list[str]:
    if len(paths) <= 1:
        return [file_sha256(p) for p in paths]
    with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="runyard-hash") as pool:
        return list(pool.map(file_sha256, paths))


def hash_local(
    cache: HashCache, entries: Sequence[tuple[str, int, int]], prefix: str | None = None
) -> dict[str, str]:
    """sha256 of local files given as (absolute path, size, mtime_ns): cached ones without reading them,
    the others read (in parallel) and remembered. `prefix`: a folder all the paths are under (one range
    scan of the cache instead of many key look-ups)."""
    known = cache.lookup(entries, prefix=prefix if len(entries) > 64 else None)
    missing = [e for e in entries if e[0] not in known]
    if missing:
        hashes = _hash_paths([Path(key) for key, _, _ in missing])
        cache.store((key, size, mtime, sha) for (key, size, mtime), sha in zip(missing, hashes, strict=True))
        known.update({key: sha for (key, _, _), sha in zip(missing, hashes, strict=True)})
    return known


def hash_files(ws: Workspace, backend: StorageBackend, files: Sequence[StoredFile]) -> dict[str, str]:
    """{file.path: sha256 or "etag:<tag>"} for files of one backend (see the module docstring)."""
    cache = hash_cache(ws)
    root = backend.local_path("")
    result: dict[str, str] = {}
    if root is not None:
        base = str(root).rstrip("/")
        entries: list[tuple[str, int, int]] = []
        for f in files:
            full = f"{base}/{f.path}" if f.path else base
            mtime = f.mtime_ns
            size = f.size
            if mtime is None:
                st = os.stat(full)
                mtime, size = st.st_mtime_ns, st.st_size
            entries.append((full, size, mtime))
        known = hash_local(cache, entries, prefix=base + "/")
        for f, (full, _, _) in zip(files, entries, strict=True):
            result[f.path] = known[full]
        return result
    timed: list[tuple[str, int, int]] = []
    for f in files:
        if f.version_tag:
            result[f.path] = f"etag:{f.version_tag}"
        elif f.mtime_ns is not None:
            timed.append((f"{backend.url}|{f.path}", f.size, f.mtime_ns))
        else:
            result[f.path] = file_sha256(backend.fetch(f.path))
    if timed:
        known = cache.lookup(timed)
        fresh: list[tuple[str, int, int, str]] = []
        for key, size, mtime in timed:
            path = key.split("|", 1)[1]
            if key not in known:
                known[key] = file_sha256(backend.fetch(path))
                fresh.append((key, size, mtime, known[key]))
            result[path] = known[key]
        cache.store(fresh)
    return result


def hash_datastore_path(ws: Workspace, datastore_name: str, path: str) -> tuple[str, list[ResolvedFile]]:
    """(content hash, files) of everything under `path` on a datastore (a folder, or one file): how reuse
    fingerprints DataReference/DataPath inputs. An empty or missing path hashes as no files."""
    backend = datastore_backend(ws, datastore_name)
    listed = backend.list_files(clean_store_path(path))
    hashes = hash_files(ws, backend, listed)
    files = [ResolvedFile(datastore_name, f.path, f.size, hashes[f.path]) for f in listed]
    return content_hash(files), files
