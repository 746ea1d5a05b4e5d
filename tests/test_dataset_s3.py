"""Datasets on S3 (moto in server mode on 127.0.0.1, tests/s3_fixture.py): from_files on a glob, tabular
reads with types, mount and download through the backend's cache, register + get, and a registered
version whose object changed on S3 failing loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard import Workspace
from runyard.data import Dataset, Datastore, DataType, FileDataset, TabularDataset
from runyard.data.hashing import hash_datastore_path
from runyard.errors import DataAccessError, InvalidInputError
from s3_fixture import S3_KEY, S3_SECRET, s3_client, s3_datastore

CSV = {
    "raw/a.csv": "id,when,score\n1,2024-01-02,0.5\n2,2024-02-03,1.5\n",
    "raw/b.csv": "id,when,score\n3,2024-03-04,x\n",
}


def _s3(endpoint: str, bucket: str, ws: Workspace) -> tuple[Datastore, object]:
    store = s3_datastore(ws, "lake", endpoint, bucket)
    client = s3_client(endpoint)
    for key, text in CSV.items():
        client.put_object(Bucket=bucket, Key=f"data/{key}", Body=text.encode())
    client.put_object(Bucket=bucket, Key="data/raw/notes.txt", Body=b"not a csv")
    return store, client


def test_files_from_s3_glob_download_and_mount(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    store, _ = _s3(endpoint, bucket, sqlite_workspace)
    ds = Dataset.File.from_files((store, "raw/*.csv"))
    assert isinstance(ds, FileDataset) and ds.to_path() == ["/a.csv", "/b.csv"]

    paths = ds.download(str(tmp_path / "dl"))
    assert [Path(p).read_text() for p in paths] == [CSV["raw/a.csv"], CSV["raw/b.csv"]]
    with ds.mount() as ctx:
        assert (Path(ctx.mount_point) / "b.csv").read_text() == CSV["raw/b.csv"]

    with pytest.raises(InvalidInputError, match=r"glob 'raw/\*.parquet' on datastore 'lake' \(s3://"):
        Dataset.File.from_files((store, "raw/*.parquet"))

    digest, files = hash_datastore_path(sqlite_workspace, "lake", "raw")
    assert [f.path for f in files] == ["raw/a.csv", "raw/b.csv", "raw/notes.txt"]
    # S3 reports ETags: the files are identified by them rather than downloaded to be hashed
    assert all(f.sha256.startswith("etag:") for f in files) and len(digest) == 64


def test_tabular_from_s3_register_and_get(workspace: Workspace, s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    store, client = _s3(endpoint, bucket, workspace)
    table = Dataset.Tabular.from_delimited_files(
        (store, "raw/*.csv"), set_column_types={"when": DataType.to_datetime("%Y-%m-%d"), "score": "float"}
    )
    cache = workspace.path / "cache" / "datastores" / "lake"
    assert table.take(1).to_pandas_dataframe()["id"].tolist() == [1]
    assert [p.name for p in cache.rglob("*.csv")] == ["a.csv"]  # take(1) fetched only the first file
    frame = table.to_pandas_dataframe()
    assert frame["id"].tolist() == [1, 2, 3]
    assert str(frame["when"].dtype).startswith("datetime64")
    assert frame["score"].isna().tolist() == [False, False, True]

    v1 = table.register(workspace, "lake_table", tags={"src": "s3"})
    got = Dataset.get_by_name(workspace, "lake_table")
    assert (
        isinstance(got, TabularDataset) and got.id == v1.id and got.version == 1 and got.tags == {"src": "s3"}
    )
    record = workspace.store.get_dataset("lake_table")
    assert [(f["datastore"], f["path"]) for f in record.files] == [
        ("lake", "raw/a.csv"),
        ("lake", "raw/b.csv"),
    ]
    assert got.take(2).to_pandas_dataframe()["id"].tolist() == [1, 2]

    client.put_object(Bucket=bucket, Key="data/raw/c.csv", Body=b"id,when,score\n9,2024-09-09,9\n")  # type: ignore[attr-defined]
    assert len(Dataset.get_by_id(workspace, v1.id).to_pandas_dataframe()) == 3  # recorded files only

    client.put_object(Bucket=bucket, Key="data/raw/a.csv", Body=b"id,when,score\n1,2024-01-02,0.7\n")  # type: ignore[attr-defined]
    with pytest.raises(
        DataAccessError,
        match=r"dataset 'lake_table' version 1 no longer resolves: raw/a.csv on datastore 'lake'",
    ):
        got.to_pandas_dataframe()
    v2 = table.register(workspace, "lake_table", create_new_version=True)
    assert v2.version == 2 and len(v2.to_pandas_dataframe()) == 3  # a.csv now has one row, plus b and c


def test_unreachable_endpoint_names_it(sqlite_workspace: Workspace) -> None:
    from conftest import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    store = Datastore.register_fsspec(
        sqlite_workspace, "gone", "s3://bucket/data", key=S3_KEY, secret=S3_SECRET,
        client_kwargs={"endpoint_url": endpoint},
    )  # fmt: skip
    with pytest.raises(DataAccessError, match=endpoint.replace(".", r"\.")):
        Dataset.File.from_files((store, "raw/*.csv"))
    assert sqlite_workspace.store.list_datasets() == []
