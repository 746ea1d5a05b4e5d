"""Regression tests for issue 12's data fixes: unambiguous credential variables, secrets written under a
cross-process lock, uploads that are never visible half-written, partition formats matched in bounded
time, mounts that cannot write into the datastore, snapshots that never carry credentials, and the
second built-in datastore, workspacefilestore. Real workspaces (SQLite and PostgreSQL), real processes,
a real server."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.core.snapshot import is_workspace_folder, snapshot_files
from runyard.data import Dataset, Datastore
from runyard.data.backends import PARTIAL_DIR, STALE_PARTIAL_SECONDS, LocalBackend
from runyard.data.datastore import builtin_datastores
from runyard.data.materialize import materialize
from runyard.data.partition_format import MAX_PARTS, PartitionFormat
from runyard.data.secrets import LOCK_FILE, env_name, resolve_secrets, save_secrets, secrets_path
from runyard.errors import InvalidInputError
from server_process import running_server


# -- credentials in the environment ---------------------------------------------------------------------
def test_environment_credentials_name_their_datastore_unambiguously(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert env_name("my_blob", "account_key") == "RUNYARD_DATASTORE_MY_BLOB__ACCOUNT_KEY"
    assert env_name("my_blob_account", "key") == "RUNYARD_DATASTORE_MY_BLOB_ACCOUNT__KEY"
    monkeypatch.setenv("RUNYARD_DATASTORE_MY_BLOB__ACCOUNT_KEY", "key-of-my_blob")
    monkeypatch.setenv("RUNYARD_DATASTORE_MY_BLOB_ACCOUNT__KEY", "key-of-my_blob_account")
    # each store gets its own, also when the credential comes from the environment only
    assert resolve_secrets(tmp_path, "my_blob", []) == {"account_key": "key-of-my_blob"}
    assert resolve_secrets(tmp_path, "my_blob_account", []) == {"key": "key-of-my_blob_account"}
    # the old single-underscore form names nothing any more
    monkeypatch.setenv("RUNYARD_DATASTORE_LAKE_SECRET", "old-form")
    assert resolve_secrets(tmp_path, "lake", ["secret"]) == {}


# -- secrets file: one writer at a time, across processes -------------------------------------------------
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_saving_secrets_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    save_secrets(folder, "first", {"key": "k1"})
    lock = folder / LOCK_FILE
    assert lock.exists() and stat.S_IMODE(lock.stat().st_mode) == 0o600
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        save_secrets(folder, "second", {"secret": "s2"})
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited > 0.8, f"save_secrets did not wait for the other process's lock ({waited:.2f} s)"
    assert resolve_secrets(folder, "first", ["key"]) == {"key": "k1"}
    assert resolve_secrets(folder, "second", ["secret"]) == {"secret": "s2"}
    assert stat.S_IMODE(secrets_path(folder).stat().st_mode) == 0o600
    # the lock is released with its descriptor: a lock taken now succeeds at once
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


# -- uploads: never visible half-written -------------------------------------------------------------------
UPLOAD = """
import sys
from runyard import Workspace
Workspace.get(sys.argv[1]).get_default_datastore().upload(sys.argv[2], target_path="up", show_progress=False)
"""


def test_a_killed_upload_is_never_listed_and_stale_partials_are_swept(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    store = ws.get_default_datastore()
    root = store.local_path()
    source = tmp_path / "src"
    source.mkdir()
    (source / "small.txt").write_text("whole\n")
    with (source / "zbig.bin").open("wb") as fh:  # sparse: cheap to make, slow enough to copy
        fh.truncate(2 * 1024**3)
    partials = root / PARTIAL_DIR
    try:
        proc = subprocess.Popen([sys.executable, "-c", UPLOAD, str(ws.path), str(source)])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if partials.is_dir() and any(n.endswith("-zbig.bin") for n in os.listdir(partials)):
                    break
            else:
                pytest.fail("no partial upload was seen in .runyard-partial/ while the copy ran")
        finally:
            proc.kill()
            proc.wait()
        left = [n for n in os.listdir(partials) if n.endswith("-zbig.bin")]
        assert left, "the killed upload left no partial file; the test shows nothing"
        assert not (root / "up" / "zbig.bin").exists()
        # nothing a dataset, a listing or a download reads sees the partial file
        assert [f.path for f in store.backend().list_files("")] == [
            p for p in ["up/small.txt"] if (root / p).exists()
        ]
        assert store.backend().list_files(PARTIAL_DIR) == []
        if (root / "up" / "small.txt").exists():
            assert Dataset.File.from_files((store, "**")).to_path() == ["/up/small.txt"]
        assert store.download(tmp_path / "copy", show_progress=False) <= 1
        assert not (tmp_path / "copy" / PARTIAL_DIR).exists()

        # a partial nobody has written to for long is swept by the next upload; a fresh one is kept
        old = time.time() - STALE_PARTIAL_SECONDS - 60
        for name in os.listdir(
            partials
        ):  # everything the killed upload left (small.txt's copy too, if caught)
            os.utime(partials / name, (old, old))
        (partials / "0123-live.bin").write_bytes(b"being written")
        (tmp_path / "next").mkdir()
        (tmp_path / "next" / "n.txt").write_text("n")
        store.upload(tmp_path / "next", target_path="next", show_progress=False)
        assert sorted(os.listdir(partials)) == ["0123-live.bin"]
        assert (root / "next" / "n.txt").read_text() == "n"
    finally:
        for name in os.listdir(partials) if partials.is_dir() else []:
            (partials / name).unlink()


def test_a_local_upload_writes_outside_the_listed_tree(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    (tmp_path / "f.txt").write_text("data")
    assert backend.put_file(tmp_path / "f.txt", "a/b/f.txt", overwrite=False) is True
    assert (tmp_path / "store" / "a" / "b" / "f.txt").read_text() == "data"
    assert os.listdir(tmp_path / "store" / "a" / "b") == ["f.txt"]  # no temporary name beside it
    assert os.listdir(tmp_path / "store" / PARTIAL_DIR) == []  # renamed away, nothing left
    assert [f.path for f in backend.list_files()] == ["a/b/f.txt"]
    assert backend.put_file(tmp_path / "f.txt", "a/b/f.txt", overwrite=False) is False


# -- partition formats ---------------------------------------------------------------------------------------
def test_a_partition_format_never_backtracks_and_star_stays_in_its_folder() -> None:
    started = time.monotonic()
    hostile = PartitionFormat("*a" * 40 + "x")
    assert hostile.values("/" + "a" * 200) is None
    assert hostile.values("d/" + "a" * 40 + "x") == {}
    assert time.monotonic() - started < 2, "matching took far longer than one pass over the path"

    layout = PartitionFormat("/{Department}/{PartitionDate:yyyy/MM/dd}/*.csv")
    assert layout.values("sales/HR/2020/12/31/part-1.csv") == {
        "Department": "HR",
        "PartitionDate": __import__("datetime").datetime(2020, 12, 31),
    }
    # '*' does not cross folders (as in globs): a file one folder deeper does not match
    assert layout.values("sales/HR/2020/12/31/extra/part-1.csv") is None
    assert PartitionFormat("{a}_{b}.csv").values("x/foo_bar_baz.csv") == {"a": "foo", "b": "bar_baz"}
    assert PartitionFormat("{a}/{a}/{b}.csv").values("x/y/z.csv") == {"a": "x", "b": "z"}
    with pytest.raises(InvalidInputError, match=f"at most {MAX_PARTS}"):
        PartitionFormat("{k}x" * MAX_PARTS)


# -- mounts ----------------------------------------------------------------------------------------------------
def test_a_mount_links_read_only_copies_shared_between_mounts(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "user-cache"))
    store = workspace.get_default_datastore()
    master = store.local_path("m/data.csv")
    master.parent.mkdir(parents=True)
    master.write_text("a\n1\n")
    registered = Dataset.File.from_files((store, "m/data.csv")).register(workspace, "m")

    first = materialize(workspace, registered, "mount", tmp_path / "job1")
    second = materialize(workspace, registered, "mount", tmp_path / "job2")
    copy = (first / "data.csv").resolve()
    assert copy == (second / "data.csv").resolve(), "two jobs' mounts do not share one copy"
    assert copy != master.resolve() and copy.is_relative_to(workspace.path / "cache" / "mounts")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o444
    assert copy.stat().st_mtime_ns == master.stat().st_mtime_ns  # the job sees the file's own mtime

    # a job that writes anyway (root ignores 0444) changes the copy, never the datastore's file
    os.chmod(copy, 0o644)
    with open(first / "data.csv", "a") as fh:
        fh.write("2\n")
    assert master.read_text() == "a\n1\n"
    # ... and the next mount sees the copy changed and replaces it
    third = materialize(workspace, registered, "mount", tmp_path / "job3")
    assert (third / "data.csv").read_text() == "a\n1\n"

    # an unregistered dataset (no hashes known) and v1's ds.mount() are protected the same way
    with Dataset.File.from_files((store, "m")).mount() as ctx:
        mounted = Path(ctx.mount_point) / "data.csv"
        assert mounted.read_text() == "a\n1\n"
        assert mounted.resolve() != master.resolve()
        assert stat.S_IMODE(mounted.resolve().stat().st_mode) == 0o444
    # a changed datastore file is copied again, not served stale
    master.write_text("a\n1\n3\n")
    later = materialize(workspace, Dataset.File.from_files((store, "m")), "mount", tmp_path / "job4")
    assert (later / "data.csv").read_text() == "a\n1\n3\n"


# -- snapshots -------------------------------------------------------------------------------------------------
def test_snapshots_leave_out_workspaces_and_secrets_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "conf").mkdir(parents=True)
    (project / "train.py").write_text("print('hi')\n")
    (project / "secrets.json").write_text('{"datastores": {}}')
    (project / "conf" / "secrets.json").write_text("{}")
    (project / "conf" / "config.json").write_text('{"learning_rate": 0.1}')  # a plain config: kept
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text('{"subscription_id": "s", "workspace_name": "w"}')
    ws = Workspace.create(
        project / "team_ws", tracking_uri=f"sqlite:///{tmp_path / 'elsewhere.db'}", show_output=False
    )
    Datastore.register_fsspec(ws, "lake", "s3://bucket/data", key="AKIAEXAMPLE", secret="TOPSECRET")
    assert is_workspace_folder(ws.path) and not (ws.path / "runyard.db").exists()
    assert not is_workspace_folder(project / "conf")
    files = [p.as_posix() for p in snapshot_files(project)]
    assert files == [".azureml/config.json", "conf/config.json", "train.py"]


# -- workspacefilestore ------------------------------------------------------------------------------------------
def test_workspacefilestore_is_a_second_built_in_datastore(workspace: Workspace, tmp_path: Path) -> None:
    files = Datastore(workspace, "WorkspaceFileStore")
    assert files.name == "workspacefilestore" and files.datastore_type == "AzureFile"
    assert Datastore.get(workspace, "workspacefilestore") == files
    assert workspace.get_default_datastore().name == "workspaceblobstore"  # never the default unless set
    assert sorted(builtin_datastores(workspace)) == ["workspaceblobstore", "workspacefilestore"]
    assert files.container_name == "datastores/workspacefilestore"

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("v\n1\n2\n")
    files.upload(src, target_path="shared", show_progress=False)
    assert files.local_path("shared/a.csv").read_text() == "v\n1\n2\n"
    assert files.local_path() == Path(workspace.artifacts.local_path("datastores/workspacefilestore"))
    assert workspace.get_default_datastore().backend().list_files("shared") == []  # its own folder

    table = Dataset.Tabular.from_delimited_files((files, "shared/*.csv")).register(workspace, "from_files")
    assert Dataset.get_by_name(workspace, "from_files").to_pandas_dataframe()["v"].tolist() == [1, 2]
    assert table.version == 1
    assert files.download(tmp_path / "out", prefix="shared", show_progress=False) == 1

    with pytest.raises(InvalidInputError, match="built-in"):
        files.unregister()
    with pytest.raises(InvalidInputError, match="built-in"):
        Datastore.register_fsspec(workspace, "workspacefilestore", (tmp_path / "x").as_uri())
    files.set_as_default()
    assert workspace.get_default_datastore() == files


def test_workspacefilestore_of_a_server_workspace_goes_through_the_server(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("file share")
    with running_server(sqlite_workspace.path, tmp_path / "server.log") as server:
        remote = Workspace.get(server.url)
        store = Datastore(remote, "workspacefilestore")
        store.upload(src, target_path="up", show_progress=False)
        served = Datastore(sqlite_workspace, "workspacefilestore").local_path("up/f.txt")
        assert served.read_text() == "file share"
        assert [f.path for f in store.backend().list_files("up")] == ["up/f.txt"]
        assert store.download(tmp_path / "out", prefix="up", show_progress=False) == 1
        assert (tmp_path / "out" / "up" / "f.txt").read_text() == "file share"
