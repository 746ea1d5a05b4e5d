"""Registered environments: the same rules on SQLite, PostgreSQL and through a real server.

`check_environment_rules` speaks only through the Store protocol, so it runs unchanged against a SqlStore
(on both databases, via the `workspace` fixture) and against a RestStore talking to a `runyard server`
subprocess: both must accept and refuse the same definitions with the same errors.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from env_definitions import v1_definition
from runyard import Workspace
from runyard.errors import AuthError, EnvironmentNotFound, InvalidInputError
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store.base import Store
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_run


def definition(*pip: str, name: str = "train-env", python: str = "3.10", **extra: Any) -> dict[str, Any]:
    """v1's environment JSON as Environment._serialize_to_dict writes it, with these pip requirements."""
    return v1_definition(
        [f"python={python}", {"pip": list(pip or ("tabulate==0.9.0",))}],
        name=name,
        spark={"repositories": [], "packages": [], "precachePackages": True},
        r=None,
        inferencingStackVersion=None,
        **extra,
    )


def expected_hash(defn: dict[str, Any]) -> str:
    """The contract's definition: sha256 of the canonical JSON (sorted keys) without name and version."""
    body = {k: v for k, v in defn.items() if k not in ("name", "version")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_versions(store: Store) -> None:
    first = store.register_environment("train-env", definition())
    assert (first.name, first.version) == ("train-env", 1) and first.created_time > 0
    assert first.definition_hash == expected_hash(definition())
    assert first.definition["version"] == "1" and first.definition["name"] == "train-env"
    # keys v1 writes that runyard does not read are kept as given
    assert first.definition["docker"]["baseImage"] == "mcr.microsoft.com/azureml/base:latest"
    assert first.definition["spark"] == definition()["spark"] and first.definition["r"] is None

    # the same definition again, in another key order or read back with its version: the same version
    assert store.register_environment("train-env", definition()) == first
    reordered = dict(reversed(list(definition().items())))
    assert store.register_environment("train-env", reordered) == first
    assert store.register_environment("train-env", first.definition) == first

    second = store.register_environment("train-env", definition("tabulate==0.9.0", "six==1.16.0"))
    assert second.version == 2 and second.definition_hash != first.definition_hash
    # going back to the first definition is a new version: versions are history, never reused
    third = store.register_environment("train-env", definition(), description="back to one package")
    assert (third.version, third.definition_hash, third.description) == (
        3,
        first.definition_hash,
        "back to one package",
    )
    assert store.get_environment("train-env") == third
    assert store.get_environment("train-env", 1) == first
    assert store.get_environment("train-env", 2) == second

    # the same definition under another name hashes the same (name and version are left out)
    other = store.register_environment("scoring.env_2", definition(name="scoring.env_2"))
    assert (other.version, other.definition_hash) == (1, first.definition_hash)
    assert [(r.name, r.version) for r in store.list_environments()] == [
        ("scoring.env_2", 1),
        ("train-env", 3),
    ]
    assert [r.version for r in store.list_environments("train-env")] == [3, 2, 1]
    assert store.list_environments("nope") == []

    with pytest.raises(
        EnvironmentNotFound, match=r"No version 9 of environment 'train-env'.*versions 1, 2, 3"
    ):
        store.get_environment("train-env", 9)
    with pytest.raises(
        EnvironmentNotFound, match=r"No environment 'missing'.*registered: 'scoring.env_2', 'train-env'"
    ):
        store.get_environment("missing")


def check_refusals(store: Store) -> None:
    for bad in ["", "-starts-with-dash", ".hidden", "has space", "sl/ash", "x" * 256, "tab\tname", "ü-env"]:
        with pytest.raises(InvalidInputError, match=r"letters, digits, '-', '_' or '\.'"):
            store.register_environment(bad, {"name": bad})
    for reserved in ["AzureML-Minimal", "azureml-mine", "Microsoft.Something", "MICROSOFTish"]:
        with pytest.raises(InvalidInputError, match=r"reserved .* env\.clone\('my-env'\)\.register\(ws\)"):
            store.register_environment(reserved, {"name": reserved})

    def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        defn = copy.deepcopy(definition())
        node = defn
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return defn

    deps = ("python", "condaDependencies", "dependencies")
    bad_definitions = [
        (changed(deps, ["numpy", 3]), "item 1 is 3; each item must be a conda package string"),
        (changed(deps, [{"pip": "tabulate"}]), r"item 0 is \{'pip': 'tabulate'\}"),
        (changed(deps, [{"pip": ["ok", 1]}]), "item 0 is"),
        (changed(deps, [{"pip": ["ok"], "conda": ["x"]}]), "item 0 is"),
        (
            changed(("environmentVariables",), {"N": 1}),
            "environmentVariables.N: Input should be a valid string",
        ),
        (changed(("environmentVariables",), {"A=B": "x"}), "variable name 'A=B' is not valid"),
        (changed(("environmentVariables",), {"A": "x\x00y"}), "NUL character"),
        (changed(("python", "interpreterPath"), 3), "python.interpreterPath: Input should be a valid string"),
        # paths the planner opens: a NUL would be a bare ValueError there, in some later run
        (changed(("python", "condaDependenciesFile"), "/tmp/a\x00b"), "condaDependenciesFile: .* NUL"),
        (changed(("python", "interpreterPath"), "/usr/bin/py\x00"), "interpreterPath: .* NUL"),
        (changed(("runyard",), {"source": "req\x00.txt"}), "runyard.source: .* NUL"),
        (changed(("python", "userManagedDependencies"), "false"), "userManagedDependencies: Input should"),
        (changed(("docker", "shmSize"), float("nan")), r"definition\.docker\.shmSize holds nan"),
        (changed(("python",), "3.10"), "python: Input should be"),
        (
            changed(("name",), "someone-else"),
            "names environment 'someone-else' but is registered as 'train-env'",
        ),
        (changed(("padding",), "x" * (256 * 1024)), "the limit is 262,144"),
    ]
    for defn, message in bad_definitions:
        with pytest.raises(InvalidInputError, match=message):
            store.register_environment("train-env", defn)
    with pytest.raises(InvalidInputError, match="must be a JSON object"):
        store.register_environment("train-env", ["not", "an", "object"])  # type: ignore[arg-type]
    assert store.get_environment("train-env").version == 3  # none of them registered anything


def check_environment_rules(store: Store) -> None:
    check_versions(store)
    check_refusals(store)


def test_sql_store_environment_rules(workspace: Workspace) -> None:
    check_environment_rules(workspace.store)


def test_concurrent_registrations_never_share_a_version(workspace: Workspace) -> None:
    """Versions are max+1 inside the write transaction; racing writers retry on the unique index, and racing
    registrations of one definition all get the one version it was stored as."""
    store = workspace.store
    with ThreadPoolExecutor(8) as pool:
        made = list(
            pool.map(
                lambda i: store.register_environment("race", definition(f"pkg{i}==1.0", name="race")),
                range(16),
            )
        )
        same = list(
            pool.map(lambda _: store.register_environment("same", definition(name="same")), range(12))
        )
    assert sorted(r.version for r in made) == list(range(1, 17))
    assert len({r.definition_hash for r in made}) == 16
    assert {r.version for r in same} == {1} and len(store.list_environments("same")) == 1


# -- through a real server ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Workspace, ServerProcess]]:
    ws = Workspace.create(tmp_path / "server-ws" / ".runyard")
    env = {"RUNYARD_CACHE_DIR": str(tmp_path / "cache")}
    with running_server(ws.path, tmp_path / "server.log", auth=True, env=env) as server:
        yield ws, server


def test_rest_store_follows_the_same_rules(served: tuple[Workspace, ServerProcess]) -> None:
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin")
    remote = RestStore(server.url, admin)
    check_environment_rules(remote)
    # what the client saw is what the server's database holds
    assert ws.store.list_environments() == remote.list_environments()
    assert ws.store.list_environments("train-env") == remote.list_environments("train-env")
    server.check_healthy()


def test_environment_scopes_and_raw_requests(served: tuple[Workspace, ServerProcess]) -> None:
    ws, server = served
    store = ws.store
    # an environment is code that runs: registering needs the right to run code (admin, or compute)
    write, _ = create_token(store, "write", compute=["local"])
    plain_write, _ = create_token(store, "write")
    read, _ = create_token(store, "read")
    run_token, _ = create_token(store, "run", run_id=make_run(store, "jobs").run_id)
    as_write, as_read, as_run = (RestStore(server.url, t) for t in (write, read, run_token))

    with pytest.raises(AuthError, match="needs a token that may run code"):
        RestStore(server.url, plain_write).register_environment("shared-env", definition(name="shared-env"))
    registered = as_write.register_environment("shared-env", definition(name="shared-env"))
    for reader in (as_read, as_run):  # reading: any valid token, a job's included
        assert reader.get_environment("shared-env") == registered
        assert reader.get_environment("shared-env", 1) == registered
        assert reader.list_environments() == [registered]
    with pytest.raises(AuthError, match="'write' scope"):
        as_read.register_environment("mine", {"name": "mine"})
    # an environment is code that runs: a job must not register one, not even a new version of its own
    with pytest.raises(AuthError, match="run token cannot register environments"):
        as_run.register_environment("shared-env", definition("evil==1.0", name="shared-env"))
    assert [r.version for r in store.list_environments("shared-env")] == [1]

    headers = {"Authorization": f"Bearer {write}"}
    api = f"{server.url}/api/v1"
    # past RestStore's own checks, the server applies store/env_rules.py itself
    bad = definition(name="raw")
    bad["python"]["condaDependencies"]["dependencies"] = [{"pip": "tabulate"}]
    answer = httpx.post(f"{api}/environments", json={"name": "raw", "definition": bad}, headers=headers)
    assert answer.status_code == 400 and "item 0 is" in answer.json()["error"]["message"]
    reserved = httpx.post(
        f"{api}/environments", json={"name": "AzureML-Minimal", "definition": {}}, headers=headers
    )
    assert reserved.status_code == 400 and "env.clone('my-env')" in reserved.text
    loose = httpx.post(f"{api}/environments", json={"name": "raw", "definition": "{}"}, headers=headers)
    assert loose.status_code == 422  # strict bodies: a JSON string is not an object
    extra = httpx.post(
        f"{api}/environments", json={"name": "raw", "definition": {}, "version": 4}, headers=headers
    )
    assert extra.status_code == 422  # versions are the store's to assign
    made = httpx.post(f"{api}/environments", json={"name": "raw", "definition": {}}, headers=headers)
    assert made.status_code == 200 and made.json()["version"] == 1
    missing = httpx.get(f"{api}/environments/raw/versions/2", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "EnvironmentNotFound"
    assert httpx.get(f"{api}/environments/raw/latest").status_code == 401
    server.check_healthy()


# -- migration ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/old.db"
    return str(request.getfixturevalue("postgres_uri"))


def test_upgrade_from_0009_adds_the_environments_table(empty_db: str) -> None:
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
        command.upgrade(config, "0009")
    with pytest.raises(StoreMigrationRequired, match="schema version 0009"):
        SqlStore(empty_db)
    upgrade_store(empty_db)
    store = SqlStore(empty_db)
    try:
        assert store.list_environments() == []
        assert store.register_environment("after-upgrade", {"name": "after-upgrade"}).version == 1
    finally:
        dispose_engine(empty_db)
