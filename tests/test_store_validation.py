"""Validation at the boundary, over HTTP: the inputs of issue 10 get a 4xx in runyard's JSON shape from a
server backed by SQLite or PostgreSQL, never a 500 and never a stored record; and an ended run cannot be
reopened over REST, with a run token or a write token.

The same inputs go through the Store protocol in tests/store_validation_suite.py (SQLite, PostgreSQL,
RestStore); here they are sent as raw JSON, the way any HTTP client could, including JSON's non-standard
`Infinity` and `NaN` literals, which Python's parser accepts.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runyard import Workspace
from runyard.errors import InvalidInputError, RunNotFound
from runyard.server.app import create_app
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store.sql_base import dispose_engine
from server_process import ServerProcess, running_server

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _run(experiment: dict[str, Any], run_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "experiment_id": experiment["id"],
        "experiment_name": experiment["name"],
        "status": "Running",
        "run_type": "azureml.scriptrun",
        "created_time": time.time(),
        **fields,
    }


def _metric_body(run_id: str, **fields: Any) -> dict[str, Any]:
    row = {"run_id": run_id, "name": "m", "kind": "scalar", "timestamp": 1.0, "value": 1.0, **fields}
    return {"rows": [row]}


def assert_client_error(response: httpx.Response, *words: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and body["error"]["message"], body
    for word in words:
        assert word in body["error"]["message"], (word, body)


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    """The server's app for a SQLite or a PostgreSQL workspace; any 500 raises inside the test."""
    with TestClient(create_app(workspace)) as client:
        yield client
    assert isinstance(workspace.store, SqlStore)
    workspace.store.engine.dispose()


def test_the_inputs_of_issue_10_are_client_errors(client: TestClient, workspace: Workspace) -> None:
    experiment = client.post("/api/v1/experiments", json={"name": "boundary"}).json()
    assert client.post("/api/v1/runs", json=[_run(experiment, "ok-run")]).status_code == 200

    assert_client_error(client.post("/api/v1/experiments", json={"name": "nul\x00name"}), "NUL")
    assert_client_error(client.post("/api/v1/experiments", json={"name": "x" * 100_000}))
    for bad_id in ("..", "a/../../b"):
        assert_client_error(client.post("/api/v1/runs", json=[_run(experiment, bad_id)]), "Run id")
    orphan = _run(experiment, "orphan", parent_id="no-such-parent")
    assert_client_error(client.post("/api/v1/runs", json=[orphan]), "does not exist")

    posted = [
        (_metric_body("ok-run", name="n" * 100_000), "the limit is 255"),
        (_metric_body("ok-run", kind="bogus"), "kind 'bogus'"),
        (_metric_body("ok-run", name="nul\x00name"), "NUL"),
        (_metric_body("ok-run", text="nul\x00text", value=None), "NUL"),
    ]
    for body, words in posted:
        assert_client_error(client.post("/api/v1/metrics", json=body), words)
    for literal in ("Infinity", "-Infinity", "NaN"):
        raw = json.dumps(_metric_body("ok-run", value=0.0)).replace("0.0", literal)
        sent = client.post("/api/v1/metrics", content=raw, headers={"content-type": "application/json"})
        assert_client_error(sent, "finite")
        raw = json.dumps(_metric_body("ok-run", kind="row", value=None, payload={"c": 0.0})).replace(
            "0.0", literal
        )
        sent = client.post("/api/v1/metrics", content=raw, headers={"content-type": "application/json"})
        assert_client_error(sent, "finite")

    store = workspace.store
    assert [e.name for e in store.list_experiments()] == ["boundary"]
    assert [r.run_id for r in store.list_runs()] == ["ok-run"]
    assert store.count_metric_rows() == 0
    # an orphan used to make the studio's compute page answer 404 for everyone
    assert client.get("/compute").status_code == 200


def test_nul_in_a_looked_up_name_is_not_a_500(client: TestClient, workspace: Workspace) -> None:
    """Reads with a NUL go to the database unchecked: PostgreSQL refuses them with a DataError, which
    becomes InvalidInputError (400); SQLite finds nothing (404, or no tags)."""
    for url in ("/api/v1/runs/a%00b", "/api/v1/experiments/a%00b", "/api/v1/runs/a%00b/tags"):
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code, response.text)
        if response.status_code >= 400:
            assert response.json()["error"]["message"]


@pytest.mark.postgres
def test_postgres_data_errors_become_invalid_input(postgres_uri: str) -> None:
    """What validation does not check reaches PostgreSQL and comes back as a DataError: one place
    (sql_base) turns it into InvalidInputError, so no route answers 500 for it."""
    # the test server trusts every local login, so a password in the URI is accepted and ignored
    with_password = postgres_uri.replace("postgresql://runyard@", "postgresql://runyard:s3cret@")
    assert with_password != postgres_uri
    store = SqlStore(with_password)
    try:
        with pytest.raises(InvalidInputError, match="cannot store a value") as info:
            store.get_run("nul\x00id")
        assert "NUL" in str(info.value)
        assert "s3cret" not in str(info.value) and "runyard:***@" in str(info.value)  # messages reach clients
        with pytest.raises(InvalidInputError):
            store.remove_tags("any", ["nul\x00key"])
        with pytest.raises(RunNotFound):
            store.get_run("no-such-run")  # a plain miss stays a miss
    finally:
        dispose_engine(with_password)


# -- ended runs stay ended over REST ---------------------------------------------------------------------
class AuthServer:
    def __init__(self, server: ServerProcess, write: str, store: SqlStore) -> None:
        self.server, self.write, self.store = server, write, store

    def post(self, token: str, url: str, body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(self.server.url + url, json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("terminal")
    ws = Workspace.create(root / "ws" / ".runyard")
    store = ws.store
    assert isinstance(store, SqlStore)
    write, _ = create_token(store, "write", name="writer")
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield AuthServer(server, write, store)
    store.engine.dispose()


@pytest.mark.parametrize("ended", ["Completed", "Failed", "Canceled"])
def test_force_cannot_reopen_an_ended_run_over_rest(auth_server: AuthServer, ended: str) -> None:
    experiment = auth_server.post(auth_server.write, "/api/v1/experiments", {"name": "ended"}).json()
    run_id = f"ended-{ended.lower()}-{time.time_ns()}"
    made = auth_server.post(auth_server.write, "/api/v1/runs", [_run(experiment, run_id)])
    assert made.status_code == 200, made.text
    run_token, _ = create_token(auth_server.store, "run", run_id=run_id)
    finished = auth_server.post(run_token, f"/api/v1/runs/{run_id}/status", {"status": ended})
    assert finished.status_code == 200 and finished.json()["status"] == ended
    end_time = finished.json()["end_time"]

    for token in (run_token, auth_server.write):  # the run's own token, and a token that may write any run
        for status in ("Running", "NotStarted", "Completed" if ended != "Completed" else "Failed"):
            reopened = auth_server.post(
                token, f"/api/v1/runs/{run_id}/status", {"status": status, "force": True}
            )
            assert reopened.status_code == 409, reopened.text
            error = reopened.json()["error"]
            assert error["code"] == "Conflict" and f"already ended with status {ended}" in error["message"]
        # unforced, a late update is dropped quietly, as one from a dying process is
        late = auth_server.post(token, f"/api/v1/runs/{run_id}/status", {"status": "Running"})
        assert late.status_code == 200 and late.json()["status"] == ended
    stored = auth_server.store.get_run(run_id)
    assert (stored.status, stored.end_time) == (ended, end_time)


def test_pipeline_style_force_moves_still_work_over_rest(auth_server: AuthServer) -> None:
    """What the scheduler forces (CancelRequested or Queued back to NotStarted) is not a terminal move."""
    experiment = auth_server.post(auth_server.write, "/api/v1/experiments", {"name": "forced"}).json()
    run_id = f"forced-{time.time_ns()}"
    auth_server.post(auth_server.write, "/api/v1/runs", [_run(experiment, run_id, status="Queued")])
    for status in ("NotStarted", "CancelRequested", "Running"):
        moved = auth_server.post(
            auth_server.write, f"/api/v1/runs/{run_id}/status", {"status": status, "force": True}
        )
        assert moved.status_code == 200 and moved.json()["status"] == status, moved.text
