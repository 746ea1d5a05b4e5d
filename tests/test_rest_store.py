"""The Store conformance suite on RestStore: the same tests as SqlStore, over HTTP.

In-process (starlette's TestClient drives the ASGI app of a fresh workspace per test) on SQLite and
PostgreSQL, and against a real `runyard server` subprocess on 127.0.0.1.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard import Experiment, Workspace
from runyard.errors import InvalidInputError, RunNotFound
from runyard.server.app import create_app
from runyard.store import SqlStore
from runyard.store.rest_store import METRIC_BATCH, RestStore
from server_process import ServerProcess, running_server
from store_suite import StoreSuite, make_run, scalar

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class RequestLog:
    """Counts the requests a client sends (an httpx event hook; nothing of runyard is replaced)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if (m, p) == (method, path))


def in_process_store(workspace: Workspace, log: RequestLog | None = None) -> RestStore:
    client = TestClient(create_app(workspace))
    # one event loop for every request (entered once, as `with TestClient(...)` does): without it each request
    # gets a loop of its own, and the write gate's waits, made on another loop, run out (503, retried)
    client.__enter__()
    if log is not None:
        client.event_hooks = {"request": [log], "response": []}
    # a URI of its own: runyard keeps one background metric writer per store URI in a process
    return RestStore(f"http://testserver-{uuid.uuid4().hex[:8]}", client=client)


class _RestExtras:
    """What only a store that talks HTTP has to show."""

    def test_metrics_travel_in_batches(self, store: RestStore, request_log: RequestLog) -> None:
        rid = make_run(store, "exp").run_id
        rows = [scalar(rid, "m", float(i), step=i) for i in range(2 * METRIC_BATCH + 7)]
        before = request_log.count("POST", "/api/v1/metrics")
        store.append_metrics(rows)
        assert request_log.count("POST", "/api/v1/metrics") - before == 3  # 5000 + 5000 + 7
        assert store.count_metric_rows(rid) == len(rows)
        assert [r.value for r in store.get_metric_rows([rid])][-3:] == [10004.0, 10005.0, 10006.0]

    def test_errors_come_back_as_runyard_errors(self, store: RestStore) -> None:
        with pytest.raises(RunNotFound, match="ghost-run"):
            store.get_run("ghost-run")
        rid = make_run(store, "exp").run_id
        with pytest.raises(InvalidInputError, match="fits in 64 bits"):
            store.append_metrics([scalar(rid, "m", 1.0), scalar(rid, "m", 2.0, step=2**70)])
        assert store.count_metric_rows(rid) == 0  # the batch is refused as a whole
        assert store.get_metric_rows([]) == [] and store.get_metric_summaries([]) == []


def test_run_log_reaches_the_server_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run.log() over HTTP: the background writer sends many values per request, not one each."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = Workspace.create(tmp_path / "served" / ".runyard")
    log = RequestLog()
    client_ws = Workspace.get("http://127.0.0.1:9")  # a server workspace; its store talks to `served`
    client_ws._store = in_process_store(served, log)
    run = Experiment(client_ws, "batched").start_logging(snapshot_directory=None)  # no server for files
    for i in range(3000):
        run.log("m", float(i))
    run.flush()
    posts = log.count("POST", "/api/v1/metrics")
    assert 1 <= posts <= 60, posts  # 3000 values
    assert run.get_metrics()["m"] == [float(i) for i in range(3000)]
    assert served.store.count_metric_rows(run.id) == 3000


class TestRestStoreSqlite(StoreSuite, _RestExtras):
    __test__ = True

    @pytest.fixture
    def request_log(self) -> RequestLog:
        return RequestLog()

    @pytest.fixture
    def store(self, tmp_path: Path, request_log: RequestLog) -> Iterator[RestStore]:
        ws = Workspace.create(tmp_path / "ws" / ".runyard")
        store = in_process_store(ws, request_log)
        yield store
        store.http.client.close()
        assert isinstance(ws.store, SqlStore)
        ws.store.engine.dispose()

    def test_writes_reach_the_workspace_database(self, store: RestStore, tmp_path: Path) -> None:
        run = make_run(store, "exp", "seen-locally")
        store.set_tags(run.run_id, {"k": "v"})
        store.append_metrics([scalar(run.run_id, "acc", 0.5)])
        local = Workspace.get(tmp_path / "ws" / ".runyard").store
        assert local.get_run("seen-locally").experiment_name == "exp"
        assert local.get_tags("seen-locally") == {"k": "v"}
        assert [r.value for r in local.get_metric_rows(["seen-locally"])] == [0.5]


@pytest.mark.postgres
class TestRestStorePostgres(StoreSuite, _RestExtras):
    __test__ = True

    @pytest.fixture
    def request_log(self) -> RequestLog:
        return RequestLog()

    @pytest.fixture
    def store(self, tmp_path: Path, postgres_uri: str, request_log: RequestLog) -> Iterator[RestStore]:
        ws = Workspace.create(tmp_path / "ws" / ".runyard", tracking_uri=postgres_uri)
        store = in_process_store(ws, request_log)
        yield store
        store.http.client.close()
        assert isinstance(ws.store, SqlStore)
        ws.store.engine.dispose()  # each test has its own database: give its connections back


# A real server costs a process start (2-6 s on a busy machine) per test, so this class runs a sample:
# records round-tripping, error mapping, query filters, every kind of metric and concurrent clients on
# uvicorn's thread pool. The in-process classes above run the whole suite over the same routes.
REAL_SERVER_TESTS = {
    "test_create_run_round_trips_fields",
    "test_create_run_duplicate_id_conflicts",
    "test_get_run_unknown_raises_helpful_error",
    "test_list_runs_filters",
    "test_append_and_get_metric_rows_in_order",
    "test_concurrent_metric_appends",
    "test_concurrent_create_run_and_register_model",
    "test_register_model_versions",
}


class TestRestStoreRealServer(StoreSuite):
    __test__ = True

    @pytest.fixture
    def server(self, tmp_path: Path) -> Iterator[ServerProcess]:
        ws = Workspace.create(tmp_path / "ws" / ".runyard")
        with running_server(ws.path, tmp_path / "server.log") as server:
            yield server

    @pytest.fixture
    def store(self, server: ServerProcess) -> RestStore:
        return RestStore(server.url)

    def test_server_binds_loopback_and_names_survive_urls(
        self, server: ServerProcess, store: RestStore
    ) -> None:
        health = httpx.get(f"{server.url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["auth"] == "off"
        assert f"on http://127.0.0.1:{server.port} (auth off)" in " ".join(server.output().split())
        make_run(store, "exp", "over-the-wire")
        started = time.time()
        store.set_run_status("over-the-wire", "Running")
        local = Workspace.get(server.workspace).store
        got = local.get_run("over-the-wire")
        assert got.status == "Running"
        assert got.start_time is not None and abs(got.start_time - started) < 60

        # names and ids travel as URL path segments: characters that mean something in a URL survive
        for name in ("/Users/me/mlflow-exp", "a?b=1", "c#d", "pct%41", "sp ace", "..", ".", "ünï"):
            made = store.get_or_create_experiment(name)
            assert store.get_experiment(name) == made
            run_id = f"{name.replace('/', '_')}-run"
            make_run(store, made, run_id)
            store.set_tags(run_id, {"k": name})
            assert store.get_run(run_id).experiment_name == name
            assert store.get_tags(run_id) == {"k": name} == local.get_tags(run_id)


for _name in [n for n in dir(StoreSuite) if n.startswith("test_") and n not in REAL_SERVER_TESTS]:
    setattr(TestRestStoreRealServer, _name, None)  # not collected: pytest collects only callables
