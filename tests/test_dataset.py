"""Datasets on a local datastore, on SQLite and PostgreSQL: construction, the versioned registry, reading
(files and tables), mount and download, consumption configs, payloads, and the loud failures (a glob
that matches nothing, a missing datastore, a registered version whose files changed or vanished)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runyard import Workspace
from runyard.data import (
    Dataset,
    DatasetConsumptionConfig,
    Datastore,
    DataType,
    FileDataset,
    TabularDataset,
    dataset_from_payload,
    dataset_payload,
    registered_datasets,
)
from runyard.data.hashing import ResolvedFile, content_hash
from runyard.data.materialize import materialize
from runyard.data.resolve import check_files, resolve_files
from runyard.errors import (
    ConflictError,
    DataAccessError,
    DatasetNotFound,
    DatastoreNotFound,
    InvalidInputError,
)
from server_process import running_server


def _store(ws: Workspace) -> tuple[Datastore, Path]:
    store = Datastore.get(ws, "workspaceblobstore")
    root = Path(store.backend().local_path("") or "")
    root.mkdir(parents=True, exist_ok=True)
    return store, root


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


CSV = {"raw/a.csv": "id,score,name\n1,0.5,ann\n2,1.5,bob\n", "raw/sub/b.csv": "id,score,name\n3,2.5,cy\n"}


def test_register_version_and_get(workspace: Workspace) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    ds = Dataset.File.from_files((store, "raw/**/*.csv"))
    assert ds.name is None and ds.id is None

    v1 = ds.register(workspace, "raw", description="first", tags={"team": "a"})
    assert (v1.name, v1.version, v1.description, v1.tags) == ("raw", 1, "first", {"team": "a"})
    assert isinstance(v1, FileDataset) and v1.id
    # the same files and definition again: v1 returns the existing version
    assert ds.register(workspace, "raw").id == v1.id

    _write(root, {"raw/c.csv": "id,score,name\n4,3.5,dee\n"})
    with pytest.raises(ConflictError, match="create_new_version=True"):
        ds.register(workspace, "raw")
    v2 = ds.register(workspace, "raw", create_new_version=True)
    assert v2.version == 2 and v2.id != v1.id

    assert Dataset.get_by_name(workspace, "raw").id == v2.id
    assert Dataset.get_by_name(workspace, "raw", version=1).id == v1.id
    assert Dataset.get_by_name(workspace, "raw", version="2").id == v2.id
    assert Dataset.get_by_id(workspace, v1.id).version == 1
    assert FileDataset.get_by_name(workspace, "raw", 1).to_path() == ["/a.csv", "/sub/b.csv"]
    assert Dataset.get_by_name(workspace, "raw").to_path() == ["/a.csv", "/c.csv", "/sub/b.csv"]
    assert set(Dataset.get_all(workspace)) == {"raw"}
    assert registered_datasets(workspace)["raw"].version == 2
    with pytest.raises(DatasetNotFound):
        Dataset.get_by_name(workspace, "raw", version=7)
    with pytest.raises(DatasetNotFound):
        Dataset.get_by_name(workspace, "nothing")
    with pytest.raises(InvalidInputError, match="version"):
        Dataset.get_by_name(workspace, "raw", version="newest")

    record = workspace.store.get_dataset("raw", 1)
    assert sorted(f["path"] for f in record.files) == ["raw/a.csv", "raw/sub/b.csv"]
    assert all(len(f["sha256"]) == 64 and f["datastore"] == "workspaceblobstore" for f in record.files)
    assert record.content_hash == content_hash([ResolvedFile.from_json(f) for f in record.files])


def test_registered_version_reads_its_recorded_files_and_fails_loudly_when_they_change(
    workspace: Workspace,
) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    Dataset.File.from_files((store, "raw/**/*.csv")).register(workspace, "raw")

    _write(root, {"raw/new.csv": "id,score,name\n9,9.9,zed\n"})  # matches the glob, but v1 did not record it
    assert Dataset.get_by_name(workspace, "raw").to_path() == ["/a.csv", "/sub/b.csv"]

    (root / "raw/a.csv").write_text("id,score,name\n1,0.5,ann\n2,1.5,BOB\n")  # same size, new bytes and mtime
    again = Dataset.get_by_name(workspace, "raw")
    with pytest.raises(DataAccessError) as info:
        again.to_path()
    message = str(info.value)
    assert "dataset 'raw' version 1 no longer resolves" in message
    assert "raw/a.csv on datastore 'workspaceblobstore' changed since it was registered" in message
    with pytest.raises(DataAccessError):
        check_files(workspace, workspace.store.get_dataset("raw", 1))

    _write(root, {"raw/a.csv": CSV["raw/a.csv"]})
    check_files(workspace, workspace.store.get_dataset("raw", 1))  # restored bytes: fine again

    (root / "raw/sub/b.csv").unlink()
    with pytest.raises(DataAccessError, match=r"raw/sub/b.csv on datastore 'workspaceblobstore' is gone"):
        again.download(str(workspace.path.parent / "dl"))
    kept = again.download(str(workspace.path.parent / "dl2"), ignore_not_found=True)
    assert [Path(p).name for p in kept] == ["a.csv"]


def test_bad_sources_register_nothing(workspace: Workspace) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    with pytest.raises(InvalidInputError, match=r"glob 'nope/\*.csv' on datastore 'workspaceblobstore'"):
        Dataset.File.from_files((store, "nope/*.csv"))
    with pytest.raises(InvalidInputError, match="matched no files"):
        Dataset.Tabular.from_delimited_files((store, "raw/missing.csv"))
    lazy = Dataset.File.from_files((store, "later/*.csv"), validate=False)
    with pytest.raises(InvalidInputError, match="matched no files"):
        lazy.register(workspace, "later")
    by_name = Dataset.File.from_files(("no_such_store", "raw/*.csv"), validate=False)
    with pytest.raises(DatastoreNotFound, match="no_such_store"):
        by_name.register(workspace, "ghost")
    with pytest.raises(InvalidInputError, match="Cannot make a dataset"):
        Dataset.File.from_files(42)
    with pytest.raises(InvalidInputError, match="register_fsspec"):
        Dataset.File.from_files("s3://bucket/x.csv")
    assert workspace.store.list_datasets() == []
    assert Dataset.get_all(workspace) == {}


def test_mount_and_download(workspace: Workspace, tmp_path: Path) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    ds = Dataset.File.from_files((store, "raw")).register(workspace, "raw")
    assert ds.to_path() == ["/a.csv", "/sub/b.csv"]

    with ds.mount() as ctx:
        mounted = Path(ctx.mount_point)
        assert (mounted / "sub/b.csv").read_text() == CSV["raw/sub/b.csv"]
        assert (mounted / "a.csv").is_symlink()
    assert not mounted.exists()

    chosen = tmp_path / "mnt"
    ctx = ds.mount(str(chosen))
    ctx.start()
    assert sorted(p.relative_to(chosen).as_posix() for p in chosen.rglob("*.csv")) == ["a.csv", "sub/b.csv"]
    ctx.stop()
    assert not chosen.exists()

    paths = ds.download(str(tmp_path / "dl"))
    assert sorted(Path(p).relative_to(tmp_path / "dl").as_posix() for p in paths) == ["a.csv", "sub/b.csv"]
    assert not Path(paths[0]).is_symlink() and Path(paths[0]).read_text() == CSV["raw/a.csv"]
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        ds.download(str(tmp_path / "dl"))
    assert len(ds.download(str(tmp_path / "dl"), overwrite=True)) == 2

    single = Dataset.File.from_files((store, "raw/a.csv"))
    assert single.to_path() == ["/a.csv"]
    view = materialize(workspace, ds, "mount", tmp_path / "view")
    assert (view / "sub" / "b.csv").is_symlink()
    copies = materialize(workspace, ds.take(1), "download", tmp_path / "copies")
    assert [p.name for p in copies.rglob("*.csv")] == ["a.csv"]


def test_local_paths_and_file_transforms(workspace: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "local"
    _write(data, {f"part-{i}.txt": str(i) for i in range(20)})
    ds = Dataset.File.from_files(str(data / "*.txt"))
    assert len(ds.to_path()) == 20
    assert ds.skip(18).to_path() == ["/part-7.txt", "/part-8.txt", "/part-9.txt"][1:]
    first, second = ds.random_split(0.5, seed=3)
    one, two = set(first.to_path()), set(second.to_path())
    assert one.isdisjoint(two) and one | two == set(ds.to_path())
    assert first.to_path() == ds.random_split(0.5, seed=3)[0].to_path()
    registered = ds.register(workspace, "local")
    assert workspace.store.get_dataset("local").files[0]["datastore"] == ""
    assert registered.take(2).to_path() == ["/part-0.txt", "/part-1.txt"]


def test_tabular_reads_with_types(workspace: Workspace, tmp_path: Path) -> None:
    store, root = _store(workspace)
    _write(
        root,
        {
            "t/1.csv": "id;when;score\n1;2024-01-02;0.5\n2;2024-02-03;x\n",
            "t/2.csv": "id;when;score\n3;2024-03-04;2\n",
        },
    )
    ds = Dataset.Tabular.from_delimited_files(
        (store, "t/*.csv"),
        separator=";",
        include_path=True,
        set_column_types={"when": DataType.to_datetime("%Y-%m-%d"), "score": DataType.to_float()},
    )
    frame = ds.to_pandas_dataframe()
    assert list(frame.columns) == ["Path", "id", "when", "score"]
    assert frame["id"].tolist() == [1, 2, 3]
    assert str(frame["when"].dtype).startswith("datetime64")
    assert frame["score"].isna().tolist() == [False, True, False]
    assert frame["Path"].tolist() == ["t/1.csv", "t/1.csv", "t/2.csv"]

    v1 = ds.register(workspace, "tab")
    assert isinstance(v1, TabularDataset)
    got = Dataset.get_by_name(workspace, "tab")
    assert got.to_pandas_dataframe()["when"].iloc[0] == pd.Timestamp("2024-01-02")
    assert got.take(1).to_pandas_dataframe()["id"].tolist() == [1]
    assert got.skip(1).keep_columns(["id"]).to_pandas_dataframe().to_dict("list") == {"id": [2, 3]}
    assert list(got.drop_columns("Path").to_pandas_dataframe().columns) == ["id", "when", "score"]
    left, right = got.random_split(0.5, seed=1)
    ids = left.to_pandas_dataframe()["id"].tolist() + right.to_pandas_dataframe()["id"].tolist()
    assert sorted(ids) == [1, 2, 3]

    csv_files = got.drop_columns("Path").to_csv_files()
    assert isinstance(csv_files, FileDataset) and csv_files.to_path()
    back = Dataset.Tabular.from_delimited_files(
        [str(Path(p)) for p in csv_files.download(str(tmp_path / "csv"))]
    ).to_pandas_dataframe()
    assert back["id"].tolist() == [1, 2, 3]
    parquet = got.keep_columns(["id", "score"]).to_parquet_files()
    table = pq.read_table(parquet.download(str(tmp_path / "pq"))[0])
    assert table.column_names == ["id", "score"] and table.column("score").type == pa.float64()

    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), root / "p.parquet")
    assert Dataset.Tabular.from_parquet_files((store, "p.parquet")).to_pandas_dataframe()["b"].tolist() == [
        "x",
        "y",
    ]
    _write(root, {"j.jsonl": '{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'})
    assert Dataset.Tabular.from_json_lines_files((store, "j.jsonl")).to_pandas_dataframe()["a"].tolist() == [
        1,
        2,
    ]

    _write(root, {"bad.csv": "a,b\n1,2\n3,4,5\n"})
    with pytest.raises(InvalidInputError, match="line 3"):
        Dataset.Tabular.from_delimited_files((store, "bad.csv")).to_pandas_dataframe()


def test_consumption_configs(workspace: Workspace) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    files = Dataset.File.from_files((store, "raw"))
    table = Dataset.Tabular.from_delimited_files((store, "raw/a.csv"))

    named = files.as_named_input("train")
    assert (named.name, named.mode, named.dataset, named.path_on_compute) == ("train", "direct", files, None)
    mounted = named.as_mount("data/in")
    assert (mounted.name, mounted.mode, mounted.path_on_compute) == ("train", "mount", "data/in")
    assert named.as_download().mode == "download"
    assert files.as_mount().mode == "mount" and files.as_download("x").path_on_compute == "x"
    assert table.as_named_input("t").mode == "direct"
    assert DatasetConsumptionConfig("d", files, "download").mode == "download"
    with pytest.raises(InvalidInputError, match="Spark"):
        named.as_hdfs()
    with pytest.raises(InvalidInputError, match="Spark"):
        files.as_hdfs()
    with pytest.raises(InvalidInputError, match="mount and download are for FileDatasets"):
        table.as_named_input("t").as_mount()
    with pytest.raises(InvalidInputError, match="not valid"):
        files.as_named_input("has space")
    with pytest.raises(InvalidInputError, match="mode"):
        DatasetConsumptionConfig("d", files, "stream")


def test_payload_round_trip(workspace: Workspace) -> None:
    store, root = _store(workspace)
    _write(root, CSV)
    ds = Dataset.Tabular.from_delimited_files((store, "raw/**/*.csv"))
    unregistered = dataset_payload(ds)
    assert unregistered["registered"] is None and unregistered["content_hash"] is None
    again = dataset_from_payload(workspace, unregistered)
    assert isinstance(again, TabularDataset) and again.definition == ds.definition

    registered = ds.register(workspace, "tab")
    payload = dataset_payload(registered)
    assert payload["registered"] == {"id": registered.id, "name": "tab", "version": 1}
    assert payload["content_hash"] == workspace.store.get_dataset("tab").content_hash
    assert dataset_from_payload(workspace, payload).id == registered.id

    derived = dataset_payload(registered.take(1))
    assert derived["registered"] is None and derived["pinned_id"] == registered.id
    _write(root, {"raw/z.csv": "id,score,name\n7,7.0,zz\n"})  # a new match of the glob is not read
    assert dataset_from_payload(workspace, derived).to_pandas_dataframe()["id"].tolist() == [1]
    assert len(dataset_from_payload(workspace, payload).to_pandas_dataframe()) == 3

    with pytest.raises(InvalidInputError, match="definition"):
        dataset_from_payload(workspace, {"definition": {"kind": "file", "sources": []}})
    with pytest.raises(InvalidInputError, match="payload"):
        dataset_from_payload(workspace, ["nope"])
    with pytest.raises(DatasetNotFound):
        dataset_from_payload(
            workspace, {**payload, "registered": {"id": "missing", "name": "tab", "version": 1}}
        )


def test_hash_of_unchanged_files_does_not_read_them(workspace: Workspace) -> None:
    """The stat-cache contract: a file whose size and mtime_ns are unchanged is trusted."""
    store, root = _store(workspace)
    _write(root, CSV)
    ds = Dataset.File.from_files((store, "raw"))
    first = resolve_files(workspace, ds.definition)
    target = root / "raw/a.csv"
    st = target.stat()
    target.write_text(CSV["raw/a.csv"].replace("ann", "ANN"))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert resolve_files(workspace, ds.definition).content_hash == first.content_hash  # trusted the stat
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert resolve_files(workspace, ds.definition).content_hash != first.content_hash


def test_register_pandas_dataframe_and_upload_directory(workspace: Workspace, tmp_path: Path) -> None:
    store, root = _store(workspace)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    first = Dataset.Tabular.register_pandas_dataframe(frame, (store, "frames"), "frame", tags={"k": "v"})
    second = Dataset.Tabular.register_pandas_dataframe(frame.head(1), (store, "frames"), "frame")
    assert (first.version, second.version, first.tags) == (1, 2, {"k": "v"})
    assert Dataset.get_by_name(workspace, "frame", 1).to_pandas_dataframe().equals(frame)
    assert len(Dataset.get_by_name(workspace, "frame").to_pandas_dataframe()) == 1
    assert len({p.parent for p in (root / "frames").rglob("*.parquet")}) == 2  # a unique folder each

    src = tmp_path / "src"
    _write(src, {"keep/a.csv": "a\n1\n", "keep/b.csv": "a\n2\n", "skip.txt": "no"})
    uploaded = Dataset.File.upload_directory(str(src), (store, "up"), pattern="**/*.csv")
    assert uploaded.to_path() == ["/keep/a.csv", "/keep/b.csv"]
    assert Dataset.File.upload_directory(str(src / "keep"), (store, "all")).to_path() == ["/a.csv", "/b.csv"]
    assert (root / "up/keep/a.csv").read_text() == "a\n1\n" and not (root / "up/skip.txt").exists()
    with pytest.raises(InvalidInputError, match="target"):
        Dataset.File.upload_directory(str(src), "not a datastore")


def test_datasets_of_a_server_workspace(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real `runyard server`: files on its workspaceblobstore, the registry in its database."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    _write(tmp_path / "src", CSV)
    with running_server(sqlite_workspace.path, tmp_path / "server.log") as server:
        remote = Workspace.get(server.url)
        store = remote.get_default_datastore()
        store.upload(str(tmp_path / "src"), target_path="in", show_progress=False)
        ds = Dataset.Tabular.from_delimited_files((store, "in/raw/**/*.csv"))
        registered = ds.register(remote, "served", description="via the server")
        assert registered.version == 1 and sqlite_workspace.store.get_dataset("served").id == registered.id
        got = Dataset.get_by_name(remote, "served")
        assert got.to_pandas_dataframe()["id"].tolist() == [1, 2, 3]
        # the bytes change on the server's side: the registered version refuses to read them
        served = sqlite_workspace.get_default_datastore().local_path("in/raw/a.csv")
        served.write_text(CSV["raw/a.csv"].replace("bob", "BOB"))
        with pytest.raises(DataAccessError, match=r"'served' version 1 no longer resolves: in/raw/a\.csv"):
            Dataset.get_by_name(remote, "served").to_pandas_dataframe()


def test_datapath_and_data_reference_sources_and_ws_datasets(workspace: Workspace) -> None:
    from runyard.data.datapath import DataPath

    store, root = _store(workspace)
    _write(root, CSV)
    assert Dataset.File.from_files(DataPath(store, "raw")).to_path() == ["/a.csv", "/sub/b.csv"]
    assert Dataset.File.from_files(store.path("raw/a.csv")).to_path() == ["/a.csv"]
    both = Dataset.Tabular.from_delimited_files([DataPath(store, "raw/a.csv"), (store, "raw/sub/*.csv")])
    assert both.to_pandas_dataframe()["id"].tolist() == [1, 2, 3]
    assert workspace.datasets == {}
    both.register(workspace, "both")
    assert list(workspace.datasets) == ["both"] and workspace.datasets["both"].version == 1


def test_http_url_sources(workspace: Workspace, tmp_path: Path) -> None:
    """An http(s) URL is downloaded into the workspace cache when read and hashed when registered."""
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    _write(served, {"data.csv": "id,v\n1,a\n2,b\n"})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.csv"
        ds = Dataset.Tabular.from_delimited_files(url)
        assert ds.to_pandas_dataframe()["v"].tolist() == ["a", "b"]
        registered = ds.register(workspace, "web")
        files = workspace.store.get_dataset("web").files
        assert files[0]["path"] == url and files[0]["datastore"] == ""
        (served / "data.csv").write_text("id,v\n1,a\n2,c\n")
        with pytest.raises(DataAccessError, match="changed since it was registered"):
            registered.to_pandas_dataframe()
        with pytest.raises(DataAccessError, match="Cannot download"):
            Dataset.File.from_files(url.replace("data.csv", "missing.csv"))
    finally:
        server.shutdown()
        server.server_close()
