"""The data rules at the store boundary (store/data_rules.py) and what the server adds for records posted
over REST: no credential in a datastore URL, no recorded file outside its datastore, a content_hash that
is the hash of the files, both built-in datastores, and no local paths or URLs in a server's records.

Store-level rules run on SQLite and PostgreSQL (the `workspace` fixture); the REST rules against a real
`runyard server` subprocess with auth; run-token reads through server/run_inputs.py on a real SQLite store.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import Experiment, Workspace
from runyard.data import Dataset, hashing
from runyard.errors import DatastoreNotFound, InvalidInputError
from runyard.server.auth import create_token
from runyard.server.run_inputs import run_input_reader
from runyard.store import SqlStore, data_rules
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord
from server_process import running_server
from store_suite import make_run


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file(path: str, content: str = "a", datastore: str = "workspaceblobstore") -> dict[str, Any]:
    return {"datastore": datastore, "path": path, "size": len(content), "sha256": sha(content)}


def record(name: str, files: list[dict[str, Any]], **fields: Any) -> DatasetRecord:
    defaults: dict[str, Any] = {
        "id": "",
        "name": name,
        "version": 0,
        "kind": "file",
        "definition": {"v": 1, "kind": "file", "sources": [{"datastore": "workspaceblobstore", "path": "d"}]},
        "files": files,
        "content_hash": "0" * 64,
        "created_time": time.time(),
    }
    return DatasetRecord(**{**defaults, **fields})


def datastore(url: str, name: str = "lake") -> DatastoreRecord:
    return DatastoreRecord(name=name, kind="fsspec", url=url)


# -- datastores ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("s3://AKIAEXAMPLE:TOPSECRET-1@bucket/data", "user name or password"),
        ("s3://AKIAEXAMPLE@bucket/data", "user name or password"),
        ("gs://bucket/data?token=TOPSECRET-1", "query string"),
        ("az://container/data?sv=2022&sig=TOPSECRET-1", "query string"),
        ("abfs://container:TOPSECRET-1@account.dfs.core.windows.net/x", "user name or password"),
        ("file:///srv/data#TOPSECRET-1", "fragment"),
    ],
)
def test_a_datastore_url_with_a_credential_is_refused_without_repeating_it(
    workspace: Workspace, url: str, what: str
) -> None:
    with pytest.raises(InvalidInputError, match=what) as caught:
        workspace.store.save_datastore(datastore(url))
    message = str(caught.value)
    assert "TOPSECRET" not in message, message
    assert "RUNYARD_DATASTORE_<NAME>__<OPTION>" in message and "secrets.json" in message
    with pytest.raises(DatastoreNotFound):
        workspace.store.get_datastore("lake")


def test_azure_container_at_account_urls_stay_valid(workspace: Workspace) -> None:
    """abfs's container@account form is not a credential: it names where the data is."""
    url = "abfs://container@account.dfs.core.windows.net/data"
    assert workspace.store.save_datastore(datastore(url)).url == url
    encoded = "file:///srv/a%23b"  # a '#' in a folder name, percent-encoded as Path.as_uri writes it
    assert workspace.store.save_datastore(datastore(encoded, "local_hash")).url == encoded


def test_workspacefilestore_is_built_in_like_workspaceblobstore(workspace: Workspace) -> None:
    store = workspace.store
    assert data_rules.BUILTIN_DATASTORES == ("workspaceblobstore", "workspacefilestore")
    for name in ("workspacefilestore", "WorkspaceFileStore"):
        with pytest.raises(InvalidInputError, match="built-in datastore and cannot be saved"):
            store.save_datastore(datastore("s3://bucket/x", name))
        with pytest.raises(InvalidInputError, match="built-in datastore and cannot be deleted"):
            store.delete_datastore(name)
        with pytest.raises(DatastoreNotFound, match=r"Datastore\(ws, 'workspacefilestore'\)"):
            store.get_datastore(name)
    store.set_default_datastore_name("WorkspaceFileStore")  # no record needed, as for workspaceblobstore
    assert store.get_default_datastore_name() == "workspacefilestore"
    assert store.list_datastores() == []


# -- datasets: paths and content hashes --------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        file("../secret.txt"),
        file("raw/../../secret.txt"),
        file("/etc/passwd"),
        file("raw//x.csv"),
        file("./raw/x.csv"),
        file("raw/x.csv/"),
        file("raw\\..\\x.csv"),
        file("/home/me/../secret", datastore=""),
        file("https://example.com/a/../b.csv", datastore=""),
    ],
)
def test_a_recorded_file_never_leaves_its_datastore(workspace: Workspace, bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=r"'\.\.'|inside its datastore"):
        workspace.store.register_dataset(record("escape", [bad]))
    with pytest.raises(Exception, match="No dataset"):
        workspace.store.get_dataset("escape")


def test_a_definition_source_with_dotdot_is_refused(workspace: Workspace) -> None:
    for source in ({"datastore": "workspaceblobstore", "path": "a/../../b"}, {"local": "/srv/../etc"}):
        definition = {"v": 1, "kind": "file", "sources": [source]}
        with pytest.raises(InvalidInputError, match=r"source 0: .* holds '\.\.'"):
            workspace.store.register_dataset(record("escape", [file("b")], definition=definition))


def test_the_store_keeps_the_hash_of_the_files_not_the_one_given(workspace: Workspace) -> None:
    """A version cannot claim another version's fingerprint: step reuse trusts record.content_hash."""
    store = workspace.store
    one = store.register_dataset(record("numbers", [file("v1/data.csv", "1")]))
    files = [file("v2/data.csv", "2"), file("v2/more.csv", "3")]
    two = store.register_dataset(record("numbers", files, content_hash=one.content_hash), True)
    resolved = [hashing.ResolvedFile.from_json(f) for f in files]
    assert two.content_hash == hashing.content_hash(resolved) != one.content_hash
    assert store.get_dataset("numbers", 2).content_hash == two.content_hash
    # the same files again (whatever hash the caller sends) are the existing version, not a conflict
    assert store.register_dataset(record("numbers", list(reversed(files)), content_hash="f" * 64)) == two
    assert hashing.content_hash is data_rules.content_hash  # one definition for the data layer and store


def test_local_and_url_files_stay_registrable_on_a_workspace_folder(tmp_path: Path) -> None:
    """The local-first extension: a workspace opened from a folder registers local files (and URLs);
    only a server refuses them, since its records name files of other machines."""
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a\n1\n")
    Dataset.File.from_files(str(tmp_path / "data" / "*.csv")).register(ws, "local")
    (stored,) = ws.store.get_dataset("local").files
    assert (stored["datastore"], stored["path"]) == ("", str(tmp_path / "data" / "x.csv"))


# -- over REST ----------------------------------------------------------------------------------------------
def test_the_server_takes_datastore_files_only_and_names_the_run_of_a_job(tmp_path: Path) -> None:
    served = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(served.store, SqlStore)
    write, _ = create_token(served.store, "write", name="w")
    run = Experiment(served, "job").start_logging()
    run_token, _ = create_token(served.store, "run", run_id=run.id, expires_in=3600)
    good = record("job output", [file("out/x.csv")])
    body = asdict(good)
    url_source = {"v": 1, "kind": "tabular", "sources": [{"url": "http://127.0.0.1:9/x.csv"}]}
    local_source = {"v": 1, "kind": "file", "sources": [{"local": "/etc"}]}
    try:
        with running_server(served.path, tmp_path / "server.log", auth=True) as server:
            api = f"{server.url}/api/v1/datasets"

            def post(token: str, **changes: Any) -> httpx.Response:
                return httpx.post(api, json={**body, **changes}, headers={"Authorization": f"Bearer {token}"})

            refused = {
                "url source": post(write, name="u", definition=url_source),
                "local source": post(write, name="l", definition=local_source),
                "local file": post(write, name="f", files=[file("/etc/hostname", datastore="")]),
                "url file": post(write, name="w", files=[file("http://127.0.0.1:9/x", datastore="")]),
            }
            for what, answer in refused.items():
                assert answer.status_code == 400, (what, answer.text)
                assert "upload the data first" in answer.json()["error"]["message"], what
            by_job = post(run_token)
            assert by_job.status_code == 200, by_job.text
            assert by_job.json()["run_id"] == run.id  # the record names the job that published it
            by_person = post(write, name="by a person")
            assert by_person.status_code == 200 and by_person.json()["run_id"] is None
        assert [d.name for d in served.store.list_datasets()] == ["by a person", "job output"]
    finally:
        run.complete()


# -- run tokens: what an input glob lets a job read ----------------------------------------------------------
def test_a_run_token_reads_what_its_globs_match_with_resolve_semantics(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    store = ws.store
    assert isinstance(store, SqlStore)
    parent = make_run(store, "inputs").run_id
    child = make_run(store, "inputs", parent_id=parent).run_id
    other = make_run(store, "inputs").run_id
    registered = store.register_dataset(record("pinned", [file("pinned/a.csv"), file("pinned/b.csv")]))
    sources = [
        {"datastore": "WorkspaceBlobStore", "path": "*.csv"},
        {"datastore": "workspaceblobstore", "path": "logs/**/*.log"},
        {"datastore": "lake", "path": "public/?.csv"},
    ]
    store.record_dataset_uses(
        [
            DatasetUse(parent, "input", "globs", "0" * 64, None, {"definition": {"sources": sources}}),
            DatasetUse(parent, "input", "folder", "0" * 64, None, {"datastore": "lake", "path": "ref"}),
            DatasetUse(parent, "input", "pinned", registered.content_hash, registered.id, {}),
        ]
    )
    blob, lake = run_input_reader(store, child, "workspaceblobstore"), run_input_reader(store, child, "LAKE")
    allowed = ["top.csv", "", "logs", "logs/a.log", "logs/2024/01/b.log", "pinned/a.csv"]
    refused = ["sub/x.csv", "top.csv.bak", "logs/a.txt", "pinned/c.csv", "pinned", "other/x.csv"]
    assert [p for p in allowed if not blob(p)] == []
    assert [p for p in refused if blob(p)] == []
    assert [p for p in ("public/a.csv", "public", "ref", "ref/deep/x.bin") if not lake(p)] == []
    assert [p for p in ("public/ab.csv", "public/p/a.csv", "refs/x", "top.csv") if lake(p)] == []
    nothing = run_input_reader(store, other, "workspaceblobstore")  # not of that family: nothing
    assert not nothing("top.csv") and not nothing("")


def test_a_partly_shaped_record_is_refused_not_crashed_on() -> None:
    """validate_dataset runs before the REST rule reads the files' fields."""
    bad = replace(
        record("odd", [file("x")]), files=[{"datastore": "", "path": "x", "size": "1", "sha256": "s"}]
    )
    with pytest.raises(InvalidInputError, match="size must be a whole number"):
        data_rules.validate_dataset(bad)
    with pytest.raises(InvalidInputError, match="upload the data first"):
        data_rules.check_server_dataset(record("odd", [file("/x", datastore="")]))
    data_rules.check_server_dataset(record("fine", [file("x")]))  # datastore files pass
