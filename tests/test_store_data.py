"""Datastore, dataset and lineage records: the same rules on SQLite, PostgreSQL and through a real server.

`check_data_rules` speaks only through the Store protocol, so it runs unchanged against a SqlStore (on
both databases, via the `workspace` fixture) and against a RestStore talking to a `runyard server`
subprocess: both must accept and refuse the same records with the same errors.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import httpx
import pytest

from runyard import Workspace
from runyard.errors import (
    AuthError,
    ConflictError,
    DatasetNotFound,
    DatastoreNotFound,
    InvalidInputError,
    RunNotFound,
    RunyardError,
)
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store.base import Store
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_run


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def datastore(name: str = "MyStore", url: str = "s3://bucket/data", **options: object) -> DatastoreRecord:
    return DatastoreRecord(
        name=name,
        kind="fsspec",
        url=url,
        options=dict(options),
        secret_names=("secret",),
        data={"endpoint": "http://127.0.0.1:9"},
    )


def dataset(name: str = "diabetes dataset", content: str = "v1", kind: str = "tabular") -> DatasetRecord:
    files = [
        {"datastore": "workspaceblobstore", "path": f"raw/{content}.csv", "size": 12, "sha256": sha(content)}
    ]
    return DatasetRecord(
        id="",
        name=name,
        version=0,
        kind=kind,
        definition={
            "v": 1,
            "kind": kind,
            "sources": [{"datastore": "workspaceblobstore", "path": "raw/*.csv"}],
        },
        files=files,
        content_hash=sha("files:" + content),
        created_time=0.0,
        description="rows",
        tags={"team": "a"},
    )


def use(run_id: str, name: str, direction: str = "input", dataset_id: str | None = None) -> DatasetUse:
    detail = {} if dataset_id else {"datastore": "workspaceblobstore", "path": "raw"}
    return DatasetUse(run_id, direction, name, sha(name + direction), dataset_id, detail)


def check_datastores(store: Store) -> None:
    saved = store.save_datastore(datastore(client_kwargs={"region_name": "eu"}))
    assert saved.name == "mystore" and saved.created_time > 0 and saved.secret_names == ("secret",)
    found = store.get_datastore("MYSTORE")
    assert found == saved and found.options == {"client_kwargs": {"region_name": "eu"}}
    with pytest.raises(ConflictError, match="overwrite=True"):
        store.save_datastore(datastore("mystore"))
    replaced = store.save_datastore(datastore("MyStore", url="s3://other"), overwrite=True)
    assert replaced.url == "s3://other" and replaced.created_time == saved.created_time
    store.save_datastore(datastore("local_files", url="file:///srv/data"))
    assert [d.name for d in store.list_datastores()] == ["local_files", "mystore"]

    with pytest.raises(DatastoreNotFound, match="built-in"):
        store.get_datastore("workspaceblobstore")
    for action, call in [
        ("saved", lambda: store.save_datastore(datastore("WorkspaceBlobStore"))),
        ("deleted", lambda: store.delete_datastore("workspaceblobstore")),
    ]:
        with pytest.raises(InvalidInputError, match=f"built-in datastore and cannot be {action}"):
            call()
    for bad in ["has-dash", "", "x" * 256, "sp ace"]:
        with pytest.raises(InvalidInputError, match="letters, digits or '_'"):
            store.save_datastore(datastore(bad))
    for url in ["http://example.com/x", "bucket/data", "s3://", "file://relative/x", "ftp://h/x"]:
        with pytest.raises(InvalidInputError, match="not an fsspec URL"):
            store.save_datastore(datastore("bad_url", url=url))
    for secret in ["account_key", "SAS_TOKEN", "Secret", "aws_secret_access_key", "Password", "credential"]:
        with pytest.raises(InvalidInputError, match="workspace secrets file"):
            store.save_datastore(datastore("leaky", **{secret: "s3cr3t"}))
    with pytest.raises(InvalidInputError, match="'key', which looks like a credential"):
        store.save_datastore(datastore("leaky", client_kwargs={"key": "AKIA"}))
    with pytest.raises(DatastoreNotFound, match="leaky"):
        store.get_datastore("leaky")  # nothing half-registered

    assert store.get_default_datastore_name() is None
    for missing in ["nope", "not-a-name"]:
        with pytest.raises(DatastoreNotFound, match=f"No datastore '{missing}'"):
            store.set_default_datastore_name(missing)
    store.set_default_datastore_name("MyStore")
    assert store.get_default_datastore_name() == "mystore"
    store.delete_datastore("local_files")
    assert store.get_default_datastore_name() == "mystore"  # another store's deletion leaves it
    store.delete_datastore("MYSTORE")
    assert store.get_default_datastore_name() is None  # deleting the default clears it
    with pytest.raises(DatastoreNotFound):
        store.delete_datastore("mystore")
    store.set_default_datastore_name("workspaceblobstore")
    assert store.get_default_datastore_name() == "workspaceblobstore"
    assert store.list_datastores() == []


def check_datasets(store: Store) -> None:
    first = store.register_dataset(dataset())
    assert (first.version, len(first.id)) == (1, 32) and first.created_time > 0
    assert store.register_dataset(dataset()) == first  # same content: the existing version
    with pytest.raises(ConflictError, match="create_new_version=True"):
        store.register_dataset(dataset(content="v2"))
    second = store.register_dataset(dataset(content="v2"), create_new_version=True)
    assert second.version == 2 and second.id != first.id
    third = store.register_dataset(dataset(content="v2"), create_new_version=True)
    assert third.version == 3
    assert store.get_dataset("diabetes dataset") == third
    assert store.get_dataset("diabetes dataset", 1) == first
    assert store.get_dataset_by_id(second.id) == second
    assert first.files[0]["sha256"] == sha("v1") and first.tags == {"team": "a"}
    other = store.register_dataset(dataset("images", kind="file"))
    assert other.version == 1
    assert [(d.name, d.version) for d in store.list_datasets()] == [
        ("diabetes dataset", 3),
        ("diabetes dataset", 2),
        ("diabetes dataset", 1),
        ("images", 1),
    ]
    assert [(d.name, d.version) for d in store.list_datasets(latest=True)] == [
        ("diabetes dataset", 3),
        ("images", 1),
    ]
    assert [d.version for d in store.list_datasets(name="images")] == [1]
    with pytest.raises(DatasetNotFound, match="version 9 of dataset 'images'"):
        store.get_dataset("images", 9)
    with pytest.raises(DatasetNotFound):
        store.get_dataset("nope")
    with pytest.raises(DatasetNotFound):
        store.get_dataset_by_id("0" * 32)

    bad_records = [
        (replace(dataset(), name="a/b"), "without '/'"),
        (replace(dataset(), name="   "), "not only spaces"),
        (replace(dataset(), name="x" * 251), "1 to 250"),
        (replace(dataset(), name="tab\there"), "control character"),
        (replace(dataset(), kind="table"), "'file', 'tabular'|file, tabular"),
        (replace(dataset(), content_hash="abc"), "64 lowercase hex"),
        (replace(dataset(), files=[{"path": "x"}]), "exactly the keys"),
        (replace(dataset(), files=[{"datastore": "d", "path": "x", "size": -1, "sha256": "s"}]), "size"),
    ]
    for record, message in bad_records:
        with pytest.raises(InvalidInputError, match=message):
            store.register_dataset(replace(record, name=record.name), create_new_version=True)
    assert store.get_dataset("diabetes dataset").version == 3  # none of them registered anything


def check_lineage(store: Store) -> None:
    first = store.register_dataset(dataset("lineage set"))
    second = store.register_dataset(dataset("lineage set", content="b"), create_new_version=True)
    run_a = make_run(store, "lineage").run_id
    run_b = make_run(store, "lineage").run_id
    store.record_dataset_uses([use(run_a, "training", dataset_id=first.id), use(run_a, "raw")])
    time.sleep(0.01)
    store.record_dataset_uses(
        [
            use(run_b, "training", dataset_id=first.id),
            use(run_b, "out", "output", dataset_id=second.id),
            use(run_b, "training", dataset_id=second.id),  # the same name twice: the last one counts
        ]
    )
    # one batch shares its time, then rows sort by run, direction and name
    assert [(u.name, u.dataset_id) for u in store.list_dataset_uses(run_id=run_a)] == [
        ("raw", None),
        ("training", first.id),
    ]
    assert {(u.direction, u.name, u.dataset_id) for u in store.list_dataset_uses(run_id=run_b)} == {
        ("input", "training", second.id),
        ("output", "out", second.id),
    }
    assert [u.run_id for u in store.list_dataset_uses(dataset_id=first.id)] == [run_a]
    by_name = store.list_dataset_uses(dataset_name="lineage set")
    assert [u.run_id for u in by_name] == [run_a, run_b, run_b]  # every version, oldest first
    assert store.list_dataset_uses(run_id=run_b, dataset_id=first.id) == []
    raw = next(u for u in store.list_dataset_uses(run_id=run_a) if u.name == "raw")
    assert raw.detail == {"datastore": "workspaceblobstore", "path": "raw"} and raw.created_time > 0
    # recording again replaces the row (upsert on run, direction, name)
    store.record_dataset_uses([use(run_a, "training", dataset_id=second.id)])
    assert [u.run_id for u in store.list_dataset_uses(dataset_id=first.id)] == []
    with pytest.raises(RunNotFound):
        store.record_dataset_uses([use("no-such-run", "x")])
    with pytest.raises(DatasetNotFound, match="not registered"):
        store.record_dataset_uses([use(run_a, "x", dataset_id="f" * 32)])
    with pytest.raises(InvalidInputError, match="'input' or 'output'"):
        store.record_dataset_uses([use(run_a, "x", direction="both")])
    assert {u.name for u in store.list_dataset_uses(run_id=run_a)} == {"raw", "training"}


def check_data_rules(store: Store) -> None:
    check_datastores(store)
    check_datasets(store)
    check_lineage(store)


def test_sql_store_data_rules(workspace: Workspace) -> None:
    check_data_rules(workspace.store)


def test_concurrent_registrations_get_distinct_versions(workspace: Workspace) -> None:
    """Versions are max+1 inside the write transaction; racing writers retry on the unique index."""
    from concurrent.futures import ThreadPoolExecutor

    store = workspace.store
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(lambda i: store.register_dataset(dataset("race", content=str(i)), True), range(16))
        )
    assert sorted(d.version for d in made) == list(range(1, 17))
    assert len({d.id for d in made}) == 16


# -- through a real server ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, ServerProcess]]:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace.create(tmp_path / "server-ws" / ".runyard")
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        yield ws, server


def test_rest_store_follows_the_same_rules(served: tuple[Workspace, ServerProcess]) -> None:
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin")
    remote = RestStore(server.url, admin)
    check_data_rules(remote)
    # what the client saw is what the server's database holds
    assert ws.store.list_datasets() == remote.list_datasets()
    assert ws.store.get_default_datastore_name() == "workspaceblobstore"
    run_ids = {r.run_id for r in ws.store.list_runs(experiment_name="lineage")}
    assert {u.run_id for u in ws.store.list_dataset_uses(dataset_name="lineage set")} == run_ids
    server.check_healthy()


def test_server_refuses_what_the_store_refuses(served: tuple[Workspace, ServerProcess]) -> None:
    """Raw requests, past RestStore's own checks: the server applies store/validation.py itself."""
    ws, server = served
    admin, _ = create_token(ws.store, "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    api = f"{server.url}/api/v1"
    leaky = {"name": "leaky", "kind": "fsspec", "url": "s3://b", "options": {"Account_Key": "k"}}
    answer = httpx.post(f"{api}/datastores", json=leaky, headers=headers)
    assert answer.status_code == 400 and "workspace secrets file" in answer.json()["error"]["message"]
    builtin = httpx.get(f"{api}/datastores/WorkspaceBlobStore", headers=headers)
    assert builtin.status_code == 404 and builtin.json()["error"]["type"] == "DatastoreNotFound"
    assert "built-in" in builtin.json()["error"]["message"]
    assert httpx.get(f"{api}/default-datastore", headers=headers).json() == {"name": None}
    body = {
        **asdict(dataset()),
        "files": [{"datastore": "", "path": "a", "size": "12", "sha256": "s"}],
    }
    typed = httpx.post(f"{api}/datasets", json=body, headers=headers)
    assert typed.status_code == 400 and "size must be a whole number" in typed.text
    coerced = httpx.post(f"{api}/datasets", json={**asdict(dataset()), "version": "2"}, headers=headers)
    assert coerced.status_code == 422  # strict bodies: no "2" -> 2
    first = httpx.post(f"{api}/datasets", json=asdict(dataset()), headers=headers)
    assert first.status_code == 200 and first.json()["version"] == 1
    changed = httpx.post(f"{api}/datasets", json=asdict(dataset(content="x")), headers=headers)
    assert changed.status_code == 409 and "create_new_version=True" in changed.text
    newer = httpx.post(
        f"{api}/datasets",
        params={"create_new_version": "true"},
        json=asdict(dataset(content="x")),
        headers=headers,
    )
    assert newer.json()["version"] == 2
    by_version = httpx.get(f"{api}/datasets/diabetes%20dataset/versions/1", headers=headers).json()
    assert by_version["id"] == first.json()["id"]
    assert httpx.get(f"{api}/datasets/diabetes%20dataset/latest", headers=headers).json()["version"] == 2
    assert httpx.get(f"{api}/datasets/diabetes%20dataset/versions/0", headers=headers).status_code == 404
    server.check_healthy()


def test_scopes_for_data(served: tuple[Workspace, ServerProcess]) -> None:
    ws, server = served
    store = ws.store
    admin, _ = create_token(store, "admin")
    write, _ = create_token(store, "write")
    read, _ = create_token(store, "read")
    own = make_run(store, "scopes").run_id
    child = make_run(store, "scopes", parent_id=own).run_id
    other = make_run(store, "scopes").run_id
    run_token, _ = create_token(store, "run", run_id=own)
    as_admin, as_write = RestStore(server.url, admin), RestStore(server.url, write)
    as_read, as_run = RestStore(server.url, read), RestStore(server.url, run_token)

    as_admin.save_datastore(datastore("shared"))
    registered = as_write.register_dataset(dataset("scoped"))
    for reader in (as_read, as_run):  # reading: any valid token
        assert [d.name for d in reader.list_datastores()] == ["shared"]
        assert reader.get_dataset("scoped") == registered
        assert reader.get_default_datastore_name() is None
    # datastores and the default: admin only
    for who in (as_write, as_read, as_run):
        with pytest.raises(AuthError):
            who.save_datastore(datastore("mine"))
        with pytest.raises(AuthError):
            who.delete_datastore("shared")
        with pytest.raises(AuthError):
            who.set_default_datastore_name("shared")
    # registering datasets: write, or a run token (for its own run's outputs)
    with pytest.raises(AuthError, match="'write' scope"):
        as_read.register_dataset(dataset("nope"))
    made = as_run.register_dataset(replace(dataset("job output"), run_id=own))
    assert made.run_id == own and store.get_dataset("job output").version == 1
    with pytest.raises(AuthError, match=f"may not write to run {other}"):
        as_run.register_dataset(replace(dataset("stolen"), run_id=other))
    # lineage: write, or a run token for its own run and children only
    with pytest.raises(AuthError):
        as_read.record_dataset_uses([use(own, "x")])
    # a job records outputs only: its inputs, recorded at submit, decide what it may read (run_inputs.py)
    with pytest.raises(AuthError, match="only the outputs"):
        as_run.record_dataset_uses([use(own, "in", dataset_id=made.id)])
    as_run.record_dataset_uses([use(own, "made", "output", dataset_id=made.id), use(child, "out", "output")])
    with pytest.raises(AuthError, match=f"may not write to run {other}"):
        as_run.record_dataset_uses([use(own, "fine", "output"), use(other, "not mine", "output")])
    assert {u.name for u in store.list_dataset_uses(run_id=own)} == {"made"}  # the refused batch left nothing
    as_write.record_dataset_uses([use(other, "ok")])
    assert [u.run_id for u in as_run.list_dataset_uses(dataset_name="job output")] == [own]
    with pytest.raises(RunyardError, match="No dataset with id"):
        as_read.get_dataset_by_id("missing")
    server.check_healthy()


# -- migration ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/old.db"
    return str(request.getfixturevalue("postgres_uri"))


def test_upgrade_from_0008_adds_the_data_tables(empty_db: str) -> None:
    from alembic import command
    from alembic.config import Config

    from runyard.errors import StoreMigrationRequired
    from runyard.store import upgrade_store
    from runyard.store.migrations.runner import SCRIPT_LOCATION
    from runyard.store.sql_base import dispose_engine, engine_for

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with engine_for(empty_db).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0008")
        conn.exec_driver_sql("INSERT INTO experiments (id, name, created_time) VALUES ('e1', 'old', 1.0)")
    with pytest.raises(StoreMigrationRequired, match="schema version 0008"):
        SqlStore(empty_db)
    upgrade_store(empty_db)
    store = SqlStore(empty_db)
    try:
        assert store.list_datastores() == [] and store.list_datasets() == []
        assert store.get_default_datastore_name() is None
        run = make_run(store, "old")
        ds = store.register_dataset(dataset("after upgrade"))
        store.record_dataset_uses([use(run.run_id, "in", dataset_id=ds.id)])
        assert [u.dataset_id for u in store.list_dataset_uses(dataset_name="after upgrade")] == [ds.id]
        assert store.get_experiment("old").id == "e1"
    finally:
        dispose_engine(empty_db)
