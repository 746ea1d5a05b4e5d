"""Content hashing with the stat cache: right hashes cold, no reads warm, changes seen, datastore paths."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.data import Datastore
from runyard.data.backends import LocalBackend
from runyard.data.hashing import CACHE_FILE, content_hash, hash_datastore_path, hash_files
from runyard.errors import DatastoreNotFound
from runyard.store.hash_cache import HashCache


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hash_cache_bulk_lookup(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "c" / "hashes.sqlite3")
    rows = [(f"/data/f{i}", i, 1000 + i, f"{i:064x}") for i in range(2500)]  # more than one IN chunk
    cache.store(rows)
    found = cache.lookup([(key, size, mtime) for key, size, mtime, _ in rows])
    assert len(found) == 2500 and found["/data/f2499"] == f"{2499:064x}"
    # a different size or mtime is a miss: the stat no longer vouches for the bytes
    assert cache.lookup([("/data/f1", 2, 1001), ("/data/f2", 2, 9), ("/data/unknown", 1, 1)]) == {}
    cache.store([("/data/f1", 5, 5, "a" * 64)])
    assert cache.lookup([("/data/f1", 5, 5)]) == {"/data/f1": "a" * 64}
    with sqlite3.connect(cache.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_hash_files_cold_warm_and_changed(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    contents = {f"d{i % 7}/f{i}.bin": os.urandom(100 + i) for i in range(300)}
    for rel, data in contents.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    backend = LocalBackend(folder)
    listed = backend.list_files()
    cold = hash_files(sqlite_workspace, backend, listed)
    assert cold == {rel: _sha(data) for rel, data in contents.items()}
    assert (sqlite_workspace.path / CACHE_FILE).is_file()

    # Warm: same size and mtime -> the cache answers without reading. Prove it by changing the bytes
    # but restoring the mtime: the stat-cache contract is to trust the stat (as make, rsync and git do).
    target = folder / "d0/f0.bin"
    st = target.stat()
    target.write_bytes(b"X" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert hash_files(sqlite_workspace, backend, backend.list_files()) == cold

    # A real change moves the mtime: it is read again.
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    warm = hash_files(sqlite_workspace, backend, backend.list_files())
    assert warm["d0/f0.bin"] == _sha(b"X" * st.st_size)
    assert {k: v for k, v in warm.items() if k != "d0/f0.bin"} == {
        k: v for k, v in cold.items() if k != "d0/f0.bin"
    }


def test_hash_datastore_path(workspace: Workspace) -> None:
    store = Datastore.get(workspace, "workspaceblobstore")
    root = Path(store.backend().local_path("") or "")
    (root / "raw/sub").mkdir(parents=True)
    (root / "raw/a.csv").write_text("a\n1\n")
    (root / "raw/sub/b.csv").write_text("a\n2\n")
    (root / "other.txt").write_text("not under raw")

    digest, files = hash_datastore_path(workspace, "workspaceblobstore", "raw")
    assert [(f.path, f.size) for f in files] == [("raw/a.csv", 4), ("raw/sub/b.csv", 4)]
    assert files[0].sha256 == _sha(b"a\n1\n") and files[0].datastore == "workspaceblobstore"
    assert digest == content_hash(files)
    assert hash_datastore_path(workspace, "workspaceblobstore", "/raw/")[0] == digest
    assert hash_datastore_path(workspace, "workspaceblobstore", "raw/a.csv")[1] == files[:1]

    (root / "raw/sub/b.csv").write_text("a\n3\n")
    changed, again = hash_datastore_path(workspace, "workspaceblobstore", "raw")
    assert changed != digest and again[1].sha256 == _sha(b"a\n3\n")

    assert hash_datastore_path(workspace, "workspaceblobstore", "nothing/here") == (content_hash([]), [])
    with pytest.raises(DatastoreNotFound, match="no_such_store"):
        hash_datastore_path(workspace, "no_such_store", "raw")
