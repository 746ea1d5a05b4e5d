"""Datastores on this machine: workspaceblobstore and file:// stores, on SQLite and PostgreSQL.

Registration, v1's names (case-insensitive, default datastore), uploads and downloads with v1's
overwrite rules, data references, secrets kept out of the database (a 0600 file or the environment), and
the errors for a missing datastore, a missing folder, a missing fsspec backend and Azure Files.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from runyard import Workspace
from runyard.data.data_reference import DataReference
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.data.datastore import Datastore
from runyard.data.secrets import SecretsFileError, env_name, resolve_secrets, secrets_path
from runyard.errors import ConflictError, DataAccessError, DatastoreNotFound, InvalidInputError
from server_process import running_server


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def datastore_rows(ws: Workspace) -> list[dict[str, object]]:
    """The datastores table as the database holds it (read with SQL, not through runyard)."""
    uri = ws.tracking_uri
    url = uri if "://" in uri and not uri.startswith("sqlite") else f"sqlite:///{ws.path / 'runyard.db'}"
    if uri.startswith("postgresql://"):
        url = uri.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM datastores"))]
    finally:
        engine.dispose()


def test_workspaceblobstore_upload_download_and_overwrite(
    workspace: Workspace, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    src = make_tree(tmp_path / "src", {"a.csv": "x\n1\n", "sub/b.txt": "bee"})
    store = workspace.get_default_datastore()
    ref = store.upload(src, target_path="raw", show_progress=False)
    assert isinstance(ref, DataReference) and ref.path_on_datastore == "raw" and ref.datastore == store
    assert (store.local_path("raw/sub/b.txt")).read_text() == "bee"
    assert [f.path for f in store.backend().list_files("raw")] == ["raw/a.csv", "raw/sub/b.txt"]

    (src / "a.csv").write_text("x\n2\n")
    store.upload(src, target_path="raw", show_progress=False)  # exists, no overwrite: kept, and said so
    assert store.local_path("raw/a.csv").read_text() == "x\n1\n"
    assert "2 of 2 files were already on datastore 'workspaceblobstore'" in capsys.readouterr().err
    store.upload(src, target_path="raw", overwrite=True, show_progress=False)
    assert store.local_path("raw/a.csv").read_text() == "x\n2\n"

    out = tmp_path / "out"
    assert store.download(out, prefix="raw", show_progress=False) == 2
    assert (out / "raw" / "sub" / "b.txt").read_text() == "bee"
    (out / "raw" / "a.csv").write_text("mine")
    assert store.download(out, prefix="raw/a", show_progress=False) == 0  # a name prefix, as in v1
    assert "1 of 1 files already existed" in capsys.readouterr().err
    assert (out / "raw" / "a.csv").read_text() == "mine"
    assert store.download(out, prefix="raw/a", overwrite=True, show_progress=False) == 1
    assert (out / "raw" / "a.csv").read_text() == "x\n2\n"
    assert not [p for p in out.rglob("*") if "partial" in p.name]


def test_register_a_file_store_and_use_it_by_any_case(workspace: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "shared"
    store = Datastore.register_fsspec(workspace, "Shared", data.as_uri())
    assert (store.name, store.datastore_type) == ("shared", "fsspec")
    assert Datastore.get(workspace, "SHARED") == store == workspace.datastores["shared"]
    assert set(workspace.datastores) == {"workspaceblobstore", "workspacefilestore", "shared"}

    files = make_tree(tmp_path / "in", {"x/1.txt": "one", "x/y/2.txt": "two"})
    ref = store.upload_files([files / "x/1.txt", files / "x/y/2.txt"], target_path="t", show_progress=False)
    assert ref.path_on_datastore == "t"
    assert (data / "t" / "1.txt").read_text() == "one" and (data / "t" / "y" / "2.txt").read_text() == "two"
    store.upload_files([str(files / "x/y/2.txt")], relative_root=str(files), show_progress=False)
    assert (data / "x" / "y" / "2.txt").read_text() == "two"
    with pytest.raises(InvalidInputError, match="not a folder above"):
        store.upload_files([files / "x/1.txt"], relative_root=str(files / "x" / "y"))
    assert store.local_path("t/1.txt") == data / "t" / "1.txt"

    assert workspace.get_default_datastore().name == "workspaceblobstore"
    store.set_as_default()
    assert (
        workspace.get_default_datastore() == store == Datastore(workspace) == Datastore.get_default(workspace)
    )
    with pytest.raises(ConflictError, match="already registered"):
        Datastore.register_fsspec(workspace, "shared", (tmp_path / "elsewhere").as_uri())
    moved = Datastore.register_fsspec(workspace, "shared", (tmp_path / "elsewhere").as_uri(), overwrite=True)
    assert moved.local_path() == tmp_path / "elsewhere"

    store.unregister()
    assert set(workspace.datastores) == {"workspaceblobstore", "workspacefilestore"}
    assert workspace.get_default_datastore().name == "workspaceblobstore"
    with pytest.raises(InvalidInputError, match="built-in"):
        workspace.get_default_datastore().unregister()


def test_bad_input_is_refused_and_leaves_nothing_registered(workspace: Workspace, tmp_path: Path) -> None:
    Datastore.register_fsspec(workspace, "known", (tmp_path / "k").as_uri())
    with pytest.raises(DatastoreNotFound, match=r"'nosuch'.*'workspaceblobstore'.*'known'"):
        Datastore.get(workspace, "nosuch")
    with pytest.raises(DatastoreNotFound, match="'nosuch'"):
        workspace.set_default_datastore("nosuch")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        workspace.get_default_datastore().upload(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="built-in"):
        Datastore.register_fsspec(workspace, "WorkspaceBlobStore", (tmp_path / "k").as_uri())
    # a URL the store refuses: neither the record nor its secret is kept
    with pytest.raises(InvalidInputError, match="fsspec URL"):
        Datastore.register_fsspec(workspace, "bad", "ftpx://host/x", secret="s3cr3t")
    with pytest.raises(InvalidInputError, match="top-level option"):
        Datastore.register_fsspec(workspace, "bad", "s3://b", client_kwargs={"aws_secret_access_key": "s"})
    assert set(workspace.datastores) == {"workspaceblobstore", "workspacefilestore", "known"}
    assert "bad" not in json.loads(secrets_path(workspace.path).read_text() or "{}").get("datastores", {})


def test_secrets_go_to_an_owner_only_file_never_to_the_database(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AccountKey+" + "k" * 40
    store = Datastore.register_azure_blob_container(
        workspace, "myblob", "container1", "acct", account_key=key, sas_token="sv=2020&sig=abc"
    )
    assert (store.datastore_type, store.container_name, store.account_name) == (
        "AzureBlob",
        "container1",
        "acct",
    )
    rows = datastore_rows(workspace)
    assert len(rows) == 1 and rows[0]["url"] == "az://container1"
    assert key not in json.dumps(rows, default=str) and "sig=abc" not in json.dumps(rows, default=str)
    assert sorted(
        json.loads(rows[0]["secret_names"])
        if isinstance(rows[0]["secret_names"], str)
        else rows[0]["secret_names"]
    ) == [  # type: ignore[arg-type]
        "account_key",
        "sas_token",
    ]

    path = secrets_path(workspace.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["datastores"]["myblob"]["account_key"] == key
    assert resolve_secrets(workspace.path, "myblob", ["account_key"]) == {"account_key": key}
    monkeypatch.setenv(env_name("myblob", "account_key"), "from-env")
    assert env_name("myblob", "account_key") == "RUNYARD_DATASTORE_MYBLOB__ACCOUNT_KEY"
    assert resolve_secrets(workspace.path, "myblob", ["account_key", "sas_token"]) == {
        "account_key": "from-env",
        "sas_token": "sv=2020&sig=abc",
    }

    os.chmod(path, 0o644)
    with pytest.raises(SecretsFileError, match=f"chmod 600 {path}"):
        resolve_secrets(workspace.path, "myblob", ["sas_token"])
    os.chmod(path, 0o600)
    store.unregister()
    assert "myblob" not in json.loads(path.read_text())["datastores"]


def test_missing_fsspec_backends_and_azure_files_say_what_to_do(workspace: Workspace) -> None:
    blob = Datastore.register_azure_blob_container(workspace, "blob", "c", "acct", account_key="k")
    lake = Datastore.register_azure_data_lake_gen2(workspace, "lake", "fs", "acct", client_secret="s")
    files = Datastore.register_azure_file_share(workspace, "share", "myshare", "acct", account_key="k")
    gcs = Datastore.register_fsspec(workspace, "gcs", "gs://bucket/data", token="t")
    assert lake.datastore_type == "AzureDataLakeGen2" and files.datastore_type == "AzureFile"
    for store, extra in ((blob, "azure"), (lake, "azure"), (gcs, "gcs")):
        with pytest.raises(DataAccessError, match=rf"pip install 'runyard\[{extra}\]'"):
            store.backend().list_files()
    with pytest.raises(DataAccessError, match=r"no Azure Files backend.*register_azure_blob_container"):
        files.download("anywhere")


def test_data_references_and_data_paths(workspace: Workspace) -> None:
    store = workspace.get_default_datastore()
    ref = store.path("raw/2024", data_reference_name="raw_in")
    assert str(ref) == "$AZUREML_DATAREFERENCE_raw_in"
    assert (ref.datastore, ref.path_on_datastore, ref.mode, ref.path_on_compute, ref.overwrite) == (
        store,
        "raw/2024",
        "mount",
        None,
        False,
    )
    down = ref.as_download("/tmp/in", overwrite=True)
    assert (down.mode, down.path_on_compute, down.overwrite, ref.mode) == (
        "download",
        "/tmp/in",
        True,
        "mount",
    )
    assert ref.as_upload().mode == "upload" and down.as_mount().mode == "mount"
    assert ref.path("jan").path_on_datastore == "raw/2024/jan"
    assert str(store.as_mount()) == "$AZUREML_DATAREFERENCE_workspaceblobstore"
    assert store.as_download("/x").path_on_compute == "/x"
    with pytest.raises(InvalidInputError, match="leaves its datastore"):
        store.path("../../etc")
    with pytest.raises(InvalidInputError, match="mode"):
        DataReference(store, mode="copy")

    dp = DataPath(store, "raw/2024", name="raw")
    assert (dp.datastore_name, dp.path_on_datastore) == ("workspaceblobstore", "raw/2024")
    made = dp.create_data_reference("raw_dl", DataPathComputeBinding(mode="download", path_on_compute="data"))
    assert (made.data_reference_name, made.mode, made.path_on_compute) == ("raw_dl", "download", "data")
    assert DataPath.create_from_data_reference(made) == dp
    assert DataReference.create(datapath=dp).data_reference_name == "raw"


def test_workspaceblobstore_of_a_server_workspace_goes_through_the_server(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    src = make_tree(tmp_path / "src", {"a.txt": "aaa", "d/b.txt": "bbb"})
    with running_server(sqlite_workspace.path, tmp_path / "server.log") as server:
        remote = Workspace.get(server.url)
        store = remote.get_default_datastore()
        store.upload(src, target_path="up", show_progress=False)
        # the bytes are in the server's workspace, not only in this client's mirror
        served = sqlite_workspace.get_default_datastore().local_path("up/d/b.txt")
        assert served.read_text() == "bbb"
        listed = store.backend().list_files("up")
        assert [(f.path, f.size) for f in listed] == [("up/a.txt", 3), ("up/d/b.txt", 3)]
        assert store.download(tmp_path / "out", prefix="up", show_progress=False) == 2
        assert (tmp_path / "out" / "up" / "a.txt").read_text() == "aaa"
        assert store.backend().put_file(src / "a.txt", "up/a.txt", overwrite=False) is False


PROGRESS_SCRIPT = """
import sys
from pathlib import Path
from runyard import Workspace
ws = Workspace.create(sys.argv[1])
src = Path(sys.argv[2])
for i in range(60):
    (src / f"f{i:02d}.txt").write_text(str(i))
ws.get_default_datastore().upload(src, target_path="many")
print("uploaded", len(list(ws.get_default_datastore().local_path("many").iterdir())), file=sys.stderr)
"""


def test_a_long_transfer_shows_a_progress_bar_only_on_a_terminal(
    sqlite_workspace: Workspace, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import pty
    import subprocess
    import sys

    src = tmp_path / "many"
    src.mkdir()
    for i in range(60):
        (src / f"f{i:02d}.txt").write_text(str(i))
    sqlite_workspace.get_default_datastore().upload(src)  # stderr is not a terminal here: quiet
    assert capsys.readouterr().err == ""

    primary, secondary = pty.openpty()
    (tmp_path / "src2").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRESS_SCRIPT, str(tmp_path / "ws2"), str(tmp_path / "src2")],
        stderr=secondary,
        stdout=subprocess.DEVNULL,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    text = seen.decode(errors="replace")
    assert "Uploading to workspaceblobstore" in text and "/60 files" in text and "uploaded 60" in text
