"""A metric row is stored once per (run_id, writer, seq), however often it is sent.

On a real SQLite file and a real PostgreSQL database: resent batches, overlapping batches and copies
within one batch store nothing twice, and the summaries and rollups count only the rows stored (they
equal those of a store that received every row once). Two clients sending the same rows at the same
moment (a client retrying while its first request is still being served) store them once too.

Over HTTP (the real app in-process, with a fault on the wire between client and app): the store writer
(what a process whose metric spool cannot be written uses) resends only what was not acknowledged, a lost
answer is resent and stored once, and a request that is not safe to repeat is not repeated.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from runyard import Workspace
from runyard.core.metric_background import STORE_CALL_ROWS, StoreWriter
from runyard.errors import StoreError
from runyard.server.app import create_app
from runyard.store import schema
from runyard.store.records import MetricRow
from runyard.store.rest_store import METRIC_BATCH, RestStore
from runyard.store.sql_store import SqlStore
from store_suite import make_run

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    uri = (
        f"sqlite:///{tmp_path}/m.db" if request.param == "sqlite" else request.getfixturevalue("postgres_uri")
    )
    opened = SqlStore(uri)
    yield opened
    opened.engine.dispose()


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[SqlStore]:
    """A store that receives every row exactly once: what the store under test must end up equal to."""
    opened = SqlStore(f"sqlite:///{tmp_path}/reference.db")
    yield opened
    opened.engine.dispose()


def numbered(run_id: str, writer: str, seqs: range, seed: int = 0) -> list[MetricRow]:
    rng = random.Random(seed)
    return [
        MetricRow(
            run_id,
            "loss" if seq % 4 else "acc",
            "scalar",
            float(seq),
            value=round(rng.uniform(-1, 1), 3),
            step=seq if seq % 3 else None,
            writer=writer,
            seq=seq,
        )
        for seq in seqs
    ]


def derived(store: SqlStore) -> tuple[list[tuple[object, ...]], ...]:
    """Everything append_metrics writes: the rows (without ids), summaries and rollups."""
    m, ms, mr = schema.metrics, schema.metric_summaries, schema.metric_rollups
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(*[c for c in m.columns if c.name != "id"]).order_by(m.c.id))
        summaries = conn.execute(sa.select(ms).order_by(ms.c.run_id, ms.c.name))
        rollups = conn.execute(sa.select(mr).order_by(*mr.primary_key.columns))
        return [tuple(r) for r in rows], [tuple(r) for r in summaries], [tuple(r) for r in rollups]


def test_resent_and_overlapping_batches_are_stored_once(store: SqlStore, reference: SqlStore) -> None:
    for s in (store, reference):
        make_run(s, "idem", "r1")
    rows = numbered("r1", "w1", range(300))
    reference.append_metrics(rows)

    store.append_metrics(rows[:100])
    store.append_metrics(rows[:100])  # a batch resent after its response was lost
    store.append_metrics(rows[50:200])  # half stored already, half new
    store.append_metrics([*rows[200:300], *rows[250:300], rows[0]])  # copies inside one batch, and an old row
    store.append_metrics(rows)  # everything again: nothing new

    assert store.count_metric_rows("r1") == 300
    assert derived(store) == derived(reference)
    (acc, loss) = store.get_metric_summaries(["r1"])
    assert (acc.count, loss.count) == (75, 225)
    assert store.last_metric_seq("r1", "w1") == 299


def test_same_seq_from_another_writer_or_run_is_a_new_row(store: SqlStore) -> None:
    make_run(store, "idem", "r1")
    make_run(store, "idem", "r2")
    store.append_metrics(numbered("r1", "w1", range(10)))
    store.append_metrics(numbered("r1", "w2", range(10)))
    store.append_metrics(numbered("r2", "w1", range(10)))
    assert [store.count_metric_rows(r) for r in ("r1", "r2")] == [20, 10]


def test_rows_without_writer_or_seq_are_always_stored(store: SqlStore) -> None:
    """Rows written without numbers (e.g. through the store API directly) cannot be recognised as
    copies, so each append stores them: the unique index treats NULLs as distinct on both databases."""
    make_run(store, "idem", "r1")
    plain = [
        MetricRow("r1", "m", "scalar", 1.0, value=1.0),
        MetricRow("r1", "m", "scalar", 1.0, value=1.0, writer="w"),
    ]
    store.append_metrics(plain)
    store.append_metrics(plain)
    assert store.count_metric_rows("r1") == 4
    assert [s.count for s in store.get_metric_summaries(["r1"])] == [4]


def test_concurrent_resends_of_the_same_rows_are_stored_once(store: SqlStore, reference: SqlStore) -> None:
    """Threads of one process, each with its own database connection, send the same batches at the same
    moment (on PostgreSQL the second insert waits for the first to commit, then finds the rows there)."""
    for s in (store, reference):
        make_run(s, "idem", "r1")
    rows = numbered("r1", "w1", range(2000), seed=3)
    reference.append_metrics(rows)
    errors: list[BaseException] = []

    def send(batches: list[list[MetricRow]], barrier: threading.Barrier) -> None:
        try:
            for batch in batches:
                barrier.wait(timeout=30)
                store.append_metrics(batch)
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    batches = [rows[start : start + 100] for start in range(0, len(rows), 100)]
    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=send, args=(batches, barrier)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert store.count_metric_rows("r1") == 2000
    assert derived(store) == derived(reference)


# -- over HTTP: what the client sends again after a failure ---------------------------------------


class FaultyNetwork(httpx.BaseTransport):
    """The network between a RestStore and the server's app, with one fault on the Nth POST to `path`:
    "refused" (the request never arrives), or "lost" (the server handles it, the answer never comes back).
    It records what reached the server. `hold` keeps the first such POST waiting until the test sets it."""

    def __init__(self, inner: httpx.BaseTransport, path: str, fail_on: int, fault: str) -> None:
        self.inner, self.path, self.fail_on, self.fault = inner, path, fail_on, fault
        self.posts = 0
        self.delivered: list[bytes] = []  # bodies the server handled, in order
        self.hold = threading.Event()
        self.hold.set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != self.path:
            return self.inner.handle_request(request)
        self.posts += 1
        if self.posts == 1:
            self.hold.wait(timeout=30)
        if self.posts == self.fail_on and self.fault == "refused":
            raise httpx.ConnectError("[Errno 111] Connection refused (injected)", request=request)
        self.delivered.append(request.read())
        response = self.inner.handle_request(request)
        if self.posts == self.fail_on and self.fault == "lost":
            response.read()
            raise httpx.RemoteProtocolError("Server disconnected without sending a response (injected)")
        return response


def rest_store_over(
    ws: Workspace, network: Callable[[httpx.BaseTransport], FaultyNetwork]
) -> tuple[RestStore, FaultyNetwork]:
    client = TestClient(create_app(ws))
    faulty = network(client._transport)
    client._transport = faulty  # the app stays real; only the wire between client and app can fail
    # a URI of its own: runyard keeps one background metric writer per store URI in a process
    return RestStore(f"http://testserver-{uuid.uuid4().hex[:8]}", client=client), faulty


def first_seqs(bodies: list[bytes]) -> list[tuple[int, int]]:
    """(first seq, row count) of each metrics request body."""
    out = []
    for body in bodies:
        rows = json.loads(body)["rows"]
        out.append((rows[0]["seq"], len(rows)))
    return out


def test_writer_resends_only_what_the_server_did_not_acknowledge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12,000 rows go out as requests of 5,000 + 5,000 + 2,000; the second never arrives. The writer
    sends the second and third again, never the first (the old writer re-queued the whole batch)."""
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "0")  # fail at once: the writer's own retry is tested
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store, network = rest_store_over(
        ws, lambda inner: FaultyNetwork(inner, "/api/v1/metrics", fail_on=3, fault="refused")
    )
    run_id = make_run(store, "idem").run_id
    writer = StoreWriter(store, "idem-writer")
    network.hold.clear()  # the first request waits (and then succeeds) while every row is queued behind it
    for i in range(12_000):
        writer.add(run_id, "m", "scalar", {"value": float(i), "text": None, "payload": None})
    network.hold.set()
    writer.flush(timeout=60)

    assert ws.store.count_metric_rows(run_id) == 12_000
    assert [s.count for s in ws.store.get_metric_summaries([run_id])] == [12_000]
    sent = first_seqs(network.delivered)
    assert network.posts == len(sent) + 1  # one request was refused
    assert sorted(seq for seq, _ in sent) == [seq for seq, _ in sent]  # never back to an earlier row
    assert sum(n for _, n in sent) == 12_000  # every row reached the server exactly once
    assert max(n for _, n in sent) == STORE_CALL_ROWS == METRIC_BATCH


def test_lost_answer_to_a_metrics_request_is_resent_and_stored_once(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store, network = rest_store_over(
        ws, lambda inner: FaultyNetwork(inner, "/api/v1/metrics", fail_on=2, fault="lost")
    )
    run_id = make_run(store, "idem").run_id
    rows = numbered(run_id, "w1", range(12_000))
    store.append_metrics(rows)  # no error: the second request is sent again after its answer was lost

    assert first_seqs(network.delivered) == [(0, 5000), (5000, 5000), (5000, 5000), (10000, 2000)]
    assert ws.store.count_metric_rows(run_id) == 12_000
    assert sum(s.count for s in ws.store.get_metric_summaries([run_id])) == 12_000


@pytest.mark.parametrize("fault", ["lost", "refused"])
def test_creating_runs_looks_before_sending_again(tmp_path: Path, fault: str) -> None:
    """Creating runs is not safe to repeat blindly (a repeat answers "already exists" for the runs it
    made): after a lost answer the client finds them and carries on; after a refused connection it sends
    again."""
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store, network = rest_store_over(
        ws, lambda inner: FaultyNetwork(inner, "/api/v1/runs", fail_on=1, fault=fault)
    )
    made = make_run(store, "idem", "made-once")
    assert made.number == 1
    assert len(network.delivered) == 1  # delivered once either way
    assert [r.run_id for r in ws.store.list_runs("idem")] == ["made-once"]


def test_a_request_that_is_not_safe_to_repeat_is_not_resent(tmp_path: Path) -> None:
    """Rows without a writer and seq cannot be recognised as copies: after a lost answer the client
    reports that they may have been stored instead of storing them twice."""
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    make_run(ws.store, "idem", "r1")
    store, network = rest_store_over(
        ws, lambda inner: FaultyNetwork(inner, "/api/v1/metrics", fail_on=1, fault="lost")
    )
    with pytest.raises(StoreError, match="may or may not have been applied"):
        store.append_metrics([MetricRow("r1", "m", "scalar", 1.0, value=1.0)])
    assert len(network.delivered) == 1 and ws.store.count_metric_rows("r1") == 1
