"""ArtifactStore on a real local folder: writes, listings, ranged reads, path safety, atomicity."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from runyard.errors import InvalidInputError, NotFoundError
from runyard.store.artifacts import ArtifactStore, clean_relpath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def store(root: Path) -> ArtifactStore:
    return ArtifactStore(str(root))


def files_on_disk(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_put_bytes_and_read(store: ArtifactStore, root: Path) -> None:
    store.put_bytes("runs/r1/outputs/a.txt", b"hello world")
    assert (root / "runs/r1/outputs/a.txt").read_bytes() == b"hello world"
    assert store.read_bytes("runs/r1/outputs/a.txt") == b"hello world"
    assert store.exists("runs/r1/outputs/a.txt")
    assert store.size("runs/r1/outputs/a.txt") == 11
    store.put_bytes("runs/r1/outputs/a.txt", b"replaced")
    assert store.read_bytes("runs/r1/outputs/a.txt") == b"replaced"
    store.put_bytes("runs/r1/empty.bin", b"")
    assert store.read_bytes("runs/r1/empty.bin") == b""
    assert files_on_disk(root) == ["runs/r1/empty.bin", "runs/r1/outputs/a.txt"]


def test_read_bytes_offset_and_length(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 4
    store.put_bytes("runs/r1/logs/std_log.txt", data)
    rel = "runs/r1/logs/std_log.txt"
    assert store.read_bytes(rel, offset=10, length=5) == data[10:15]
    assert store.read_bytes(rel, offset=1000) == data[1000:]
    assert store.read_bytes(rel, length=3) == data[:3]
    assert store.read_bytes(rel, offset=1020, length=100) == data[1020:]  # short read at the end
    assert store.read_bytes(rel, offset=len(data)) == b""
    assert store.read_bytes(rel, offset=len(data) + 50, length=10) == b""


def test_read_missing_raises_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.txt"):
        store.read_bytes("runs/r1/nope.txt")
    with pytest.raises(NotFoundError, match=r"nope\.txt"):
        store.get_file("runs/r1/nope.txt", tmp_path / "dest.txt")
    assert not (tmp_path / "dest.txt").exists()


def test_put_file_and_get_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "model.pkl"
    src.write_bytes(b"\x00\x01pickle bytes\xff" * 1000)
    store.put_file("models/clf/1/model.pkl", src)
    assert store.exists("models/clf/1/model.pkl")
    assert store.read_bytes("models/clf/1/model.pkl") == src.read_bytes()

    dest = tmp_path / "download" / "deep" / "copy.pkl"  # parent folders are created
    store.get_file("models/clf/1/model.pkl", dest)
    assert dest.read_bytes() == src.read_bytes()
    # overwriting an existing destination leaves no temporary files behind
    dest.write_bytes(b"old")
    store.get_file("models/clf/1/model.pkl", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.pkl"]


def test_put_dir_and_list(store: ArtifactStore, tmp_path: Path, root: Path) -> None:
    src = tmp_path / "outputs"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("bb")
    (src / "sub" / "deeper" / "c.bin").write_bytes(b"ccc")
    (src / "empty-dir").mkdir()

    written = store.put_dir("runs/r1/outputs", src)
    assert written == [
        "runs/r1/outputs/a.txt",
        "runs/r1/outputs/sub/b.txt",
        "runs/r1/outputs/sub/deeper/c.bin",
    ]
    assert store.list("runs/r1/outputs") == ["a.txt", "sub/b.txt", "sub/deeper/c.bin"]
    assert store.list("runs/r1") == ["outputs/a.txt", "outputs/sub/b.txt", "outputs/sub/deeper/c.bin"]
    assert store.list("runs/r1/outputs/sub") == ["b.txt", "deeper/c.bin"]
    assert store.list("runs/r1/outputs/sub/") == ["b.txt", "deeper/c.bin"]
    assert store.read_bytes("runs/r1/outputs/sub/deeper/c.bin") == b"ccc"
    assert store.list("runs/nothing-here") == []
    assert files_on_disk(root) == sorted(written)


def test_exists(store: ArtifactStore) -> None:
    assert not store.exists("runs/r1/x.txt")
    store.put_bytes("runs/r1/x.txt", b"x")
    assert store.exists("runs/r1/x.txt")
    assert store.exists("runs/r1")  # folders count
    assert not store.exists("runs/r1/y.txt")
    assert not store.exists("runs/r2")


def test_list_hides_temporary_files(store: ArtifactStore, root: Path) -> None:
    store.put_bytes("runs/r1/outputs/done.txt", b"done")
    # a write that was interrupted halfway leaves its temporary file behind
    leftover = root / "runs/r1/outputs/big.bin.tmp-1a2b3c4d"
    leftover.write_bytes(b"half")
    assert store.list("runs/r1") == ["outputs/done.txt"]
    assert store.list("runs/r1/outputs") == ["done.txt"]


def test_writes_leave_no_temporary_files(store: ArtifactStore, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"f" * 10_000)
    for i in range(5):
        store.put_bytes(f"runs/r1/b{i}.bin", os.urandom(1000))
        store.put_file(f"runs/r1/f{i}.bin", src)
    store.put_bytes("runs/r1/b0.bin", b"overwritten")
    on_disk = files_on_disk(root)
    assert not [p for p in on_disk if ".tmp" in p]
    assert len(on_disk) == 10


def test_concurrent_reader_never_sees_partial_file(store: ArtifactStore) -> None:
    """While one thread keeps replacing a file, readers get one whole version or the other."""
    rel = "runs/r1/outputs/state.json"
    old, new = b"a" * 200_000, b"b" * 300_000
    store.put_bytes(rel, old)
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            store.put_bytes(rel, new if writes % 2 else old)
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(150):
            data = store.read_bytes(rel)
            assert data in (old, new), f"read {len(data)} bytes: a partial write was visible"
            listed = store.list("runs/r1/outputs")
            assert listed == ["state.json"], listed
    finally:
        stop.set()
        thread.join(timeout=30)
    assert writes > 1


@pytest.mark.parametrize("bad", ["../x", "/abs", "/etc/passwd", "a/../../b", "", "..", ".", "a/..", "..\\x"])
def test_clean_relpath_rejects_escaping_paths(bad: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        clean_relpath(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "relative path" in message
    assert "use a name like" in message  # says what to do instead


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("outputs/model.pkl", "outputs/model.pkl"),
        ("a/./b", "a/b"),
        ("a//b", "a/b"),
        ("a/b/../c", "a/c"),
        ("a\\b\\c.txt", "a/b/c.txt"),
        ("dir/", "dir"),
    ],
)
def test_clean_relpath_normalises(given: str, expected: str) -> None:
    assert clean_relpath(given) == expected


def test_store_methods_reject_escaping_paths(store: ArtifactStore, tmp_path: Path, root: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with pytest.raises(InvalidInputError):
        store.put_bytes("../outside.txt", b"x")
    with pytest.raises(InvalidInputError):
        store.put_file("runs/../../outside.txt", src)
    with pytest.raises(InvalidInputError):
        store.read_bytes("/etc/hostname")
    with pytest.raises(InvalidInputError):
        store.list("../")
    assert not (tmp_path / "outside.txt").exists()
    assert not root.exists() or files_on_disk(root) == []
