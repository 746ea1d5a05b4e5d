"""A metric row is stored once per (run_id, writer, seq), however often it is sent.

On a real SQLite file and a real PostgreSQL database: resent batches, overlapping batches and copies
within one batch store nothing twice, and the summaries and rollups count only the rows stored (they
equal those of a store that received every row once). Two clients sending the same rows at the same
moment (a client retrying while its first request is still being served) store them once too.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from runyard.store import schema
from runyard.store.records import MetricRow
from runyard.store.sql_store import SqlStore
from store_suite import make_run


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
