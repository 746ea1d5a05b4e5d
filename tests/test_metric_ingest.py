"""The column-wise metric path (store/sql_metric_batch.py) stores what the row path stores.

The reference is the row path itself: the same values appended as unnumbered MetricRows (no writer or seq),
which append_metrics always stores row by row. Both runs must then hold the same rows, summaries (count,
last, min, max and MLflow's latest), rollup buckets and charts, whatever the batches' shapes. Everything
runs on a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from runyard.errors import RunNotFound
from runyard.store import schema as t
from runyard.store.records import MetricBatch, MetricRow
from runyard.store.sql_store import SqlStore
from store_suite import make_run

NAMES = ["loss", "acc", "epoch", "flag"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'runyard.db'}"
    else:
        uri = str(request.getfixturevalue("postgres_uri"))
    store = SqlStore(uri)
    yield store
    store.engine.dispose()


def mixed_batch(run_id: str, writer: str, start: int, n: int, seed: int) -> MetricBatch:
    """n rows of four metrics interleaved, as run.log makes them: floats (ties, -0.0 and 0.0 among them),
    ints and bools kept as payloads, values of None, steps missing, repeated or going back, and timestamps
    that tie, so that every rule of the summaries, MLflow's latest and the rollups has work to do. Each
    row depends on (seed, seq) only: batches of one seed agree on every seq they share."""
    name_ids, steps, values, payloads, times = [], [], [], [], []
    base = 1_700_000_000.0
    for i in range(n):
        rng = random.Random(f"{seed}-{start + i}")
        name_id = rng.choice([0, 0, 0, 1, 1, 2, 3])
        step: int | None = start + i
        payload: Any = None
        if name_id == 0:
            value: float | None = rng.choice([round(rng.uniform(-1, 1), 1), 0.0, -0.0, None, 2.5])
            step = rng.choice([start + i, None, 7, start + i])
        elif name_id == 1:
            value = round(rng.random(), 2)
            step = rng.choice([None, None, start + i])
        elif name_id == 2:
            payload = rng.randrange(-3, 10**12)
            value = float(payload)
        else:
            payload = rng.random() < 0.5
            value = float(payload)
        name_ids.append(name_id)
        steps.append(step)
        values.append(value)
        payloads.append(payload)
        times.append(base + rng.choice([0.0, 0.5, float(start + i)]))
    return MetricBatch(
        run_id=run_id,
        writer=writer,
        names=list(NAMES),
        name_ids=name_ids,
        steps=steps,
        values=values,
        payloads=payloads,
        timestamps=times,
        seqs=list(range(start, start + n)),
    )


def unnumbered(rows: Sequence[MetricRow], run_id: str) -> list[MetricRow]:
    """The same rows for the row path: another run, no writer or seq."""
    return [dataclasses.replace(r, run_id=run_id, writer=None, seq=None) for r in rows]


def table_contents(store: SqlStore, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """A run's metric rows (in id order), summaries and rollups as stored, less run ids, ids, writers, seqs."""
    m, ms, mr = t.metrics, t.metric_summaries, t.metric_rollups
    skip = {"id", "run_id", "writer", "seq"}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(m).where(m.c.run_id == run_id).order_by(m.c.id)).mappings()
        summaries = conn.execute(sa.select(ms).where(ms.c.run_id == run_id).order_by(ms.c.name)).mappings()
        rollups = conn.execute(
            sa.select(mr).where(mr.c.run_id == run_id).order_by(mr.c.name, mr.c.level, mr.c.bucket)
        ).mappings()
        return {
            what: [tuple(v for k, v in r.items() if k not in skip) for r in found]
            for what, found in (("metrics", rows), ("summaries", summaries), ("rollups", rollups))
        }


def assert_same_metrics(store: SqlStore, run_id: str, reference: str) -> None:
    """Everything a reader can see of `run_id`'s metrics equals what the row path stored for `reference`."""
    got, want = table_contents(store, run_id), table_contents(store, reference)
    assert got["metrics"] == want["metrics"]
    assert got["summaries"] == want["summaries"]
    assert got["rollups"] == want["rollups"]
    assert len(got["rollups"]) > 0
    assert unnumbered(store.get_metric_rows([run_id]), reference) == store.get_metric_rows([reference])
    assert [dataclasses.replace(s, run_id=reference) for s in store.get_metric_summaries([run_id])] == (
        store.get_metric_summaries([reference])
    )
    latest = store.mlflow_latest_metrics([run_id, reference])
    assert latest[run_id] == latest[reference] and latest[run_id]
    for name in NAMES:
        for max_points in (8, 2000):
            chart = store.get_metric_chart(run_id, name, max_points=max_points)
            assert dataclasses.replace(chart, run_id=reference) == store.get_metric_chart(
                reference, name, max_points=max_points
            )


@pytest.mark.parametrize("sizes", [[1], [37, 1, 500], [3000, 5000, 100]])
def test_batches_store_what_rows_store(store: SqlStore, sizes: list[int]) -> None:
    """Batches cut anywhere (a bucket of 64 or 4,096 values filled over several batches) add up to the
    row path's rows, summaries and rollups."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    start = 0
    for seed, n in enumerate(sizes):
        batch = mixed_batch(run_id, "w1", start, n, seed)
        store.append_metric_batch(batch)
        store.append_metrics(unnumbered(batch.rows(), reference))
        start += n
    assert store.count_metric_rows(run_id) == sum(sizes)
    assert_same_metrics(store, run_id, reference)


def test_numbered_rows_of_one_writer_take_the_same_path(store: SqlStore) -> None:
    """append_metrics with run.log's rows (numbered, one writer) stores them as a MetricBatch would, and as
    the row path stores the same values unnumbered."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    for seed, (start, n) in enumerate([(0, 700), (700, 90)]):
        rows = mixed_batch(run_id, "w1", start, n, seed).rows()
        store.append_metrics(rows)
        store.append_metrics(unnumbered(rows, reference))
    assert [r.seq for r in store.get_metric_rows([run_id])] == list(range(790))
    assert_same_metrics(store, run_id, reference)


def test_nan_and_infinity_through_mlflows_door(store: SqlStore) -> None:
    """MLflow logs NaN and ±inf; numbered rows carrying them take the column path and keep the row path's
    rules: NaN counts for MLflow's latest only, ±inf is a value."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    values = [1.0, float("nan"), float("inf"), -2.0, float("-inf"), float("nan"), 0.5]
    rows = [
        MetricRow(run_id, NAMES[i % 2], "scalar", 100.0 + i // 3, value=v, step=i // 2, writer="w", seq=i)
        for i, v in enumerate(values * 20)
    ]
    store.append_mlflow_metrics(rows)
    store.append_mlflow_metrics(unnumbered(rows, reference))
    assert store.count_metric_rows(run_id) == len(rows)
    assert_same_metrics(store, run_id, reference)


def test_numpy_columns_store_the_same_as_lists(store: SqlStore) -> None:
    """name_ids, timestamps and seqs may come as numpy arrays straight from a spool's memory map."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    batch = mixed_batch(run_id, "w1", 0, 400, 3)
    as_arrays = dataclasses.replace(
        batch,
        name_ids=np.array(batch.name_ids, dtype=np.uint8),
        timestamps=np.array(batch.timestamps),
        seqs=np.array(batch.seqs, dtype=np.int64),
    )
    store.append_metric_batch(as_arrays)
    store.append_metrics(unnumbered(batch.rows(), reference))
    assert_same_metrics(store, run_id, reference)


def test_a_resent_batch_is_stored_once(store: SqlStore) -> None:
    """Whole, overlapping, and with seqs repeated inside it: each seq once, summaries and rollups count once."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    first = mixed_batch(run_id, "w1", 0, 300, 1)
    store.append_metric_batch(first)
    store.append_metric_batch(first)  # a lost answer: the whole batch again
    store.append_metrics(first.rows())  # the same rows through the row door
    overlapping = mixed_batch(run_id, "w1", 200, 300, 1)  # seqs 200-499: 200-299 are stored already
    store.append_metric_batch(overlapping)
    twice = dataclasses.replace(first, seqs=[s + 500 for s in first.seqs])
    doubled = MetricBatch(
        run_id=run_id,
        writer="w1",
        names=twice.names,
        name_ids=[*twice.name_ids, *twice.name_ids],
        steps=[*twice.steps, *twice.steps],
        values=[*twice.values, *twice.values],
        payloads=[*twice.payloads, *twice.payloads],
        timestamps=[*twice.timestamps, *twice.timestamps],
        seqs=[*twice.seqs, *twice.seqs],
    )
    store.append_metric_batch(doubled)  # every seq twice in one batch: the first copy counts

    stored = [r.seq for r in store.get_metric_rows([run_id])]
    assert stored == list(range(800))
    expected = first.rows() + overlapping.rows()[100:] + twice.rows()
    store.append_metrics(unnumbered(expected, reference))
    assert_same_metrics(store, run_id, reference)
    assert store.last_metric_seq(run_id, "w1") == 799


def test_another_writer_with_the_same_seqs_is_stored(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    store.append_metric_batch(mixed_batch(run_id, "w1", 0, 50, 1))
    store.append_metric_batch(mixed_batch(run_id, "w2", 0, 50, 1))
    assert store.count_metric_rows(run_id) == 100
    assert store.last_metric_seq(run_id, "w2") == 49


def test_an_unknown_run_is_refused_and_nothing_is_written(store: SqlStore) -> None:
    make_run(store, "exp")
    with pytest.raises(RunNotFound, match="ghost"):
        store.append_metric_batch(mixed_batch("ghost", "w1", 0, 10, 1))
    with pytest.raises(RunNotFound, match="ghost"):
        store.append_metrics(mixed_batch("ghost", "w1", 0, 10, 1).rows())
    assert store.count_metric_rows() == 0


def test_an_empty_batch_is_a_no_op(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    empty = MetricBatch(run_id, "w1", [], [], [], [], [], [], [])
    store.append_metric_batch(empty)
    store.append_metric_batch(dataclasses.replace(empty, run_id="ghost"))  # nothing to store: no lookup
    assert store.count_metric_rows(run_id) == 0
    assert store.get_metric_summaries([run_id]) == []


def _send_overlapping(uri: str, run_id: str, rounds: int, offset: int) -> None:
    """One of several processes resending the same writer's batches, shifted by `offset` seqs."""
    store = SqlStore(uri)
    for r in range(rounds):
        store.append_metric_batch(mixed_batch(run_id, "w1", r * 100 + offset, 150, seed=0))
    store.engine.dispose()


def test_concurrent_overlapping_batches_count_once(store: SqlStore) -> None:
    """Threads and processes sending overlapping stretches of one writer's seqs at once (a resend racing its
    original): every seq is stored once, and the summaries and rollups count it once."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    rounds = 6
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def in_thread(offset: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                store.append_metric_batch(mixed_batch(run_id, "w1", r * 100 + offset, 150, seed=0))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_send_overlapping, args=(store.uri, run_id, rounds, o)) for o in (0, 50)]
    threads = [threading.Thread(target=in_thread, args=(o,)) for o in (0, 50, 25)]
    for p in procs:
        p.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    for p in procs:
        p.join(timeout=120)
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0]

    stored = store.get_metric_rows([run_id])
    assert sorted(r.seq for r in stored) == list(range(rounds * 100 + 100))
    # whichever sender stored a seq, its summaries and rollups are those of the rows stored, in their order
    store.append_metrics(unnumbered(stored, reference))
    assert_same_metrics(store, run_id, reference)


def test_the_rows_stay_in_log_order_across_batches(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    for start in (0, 64, 65, 4000):
        n = {0: 64, 64: 1, 65: 3935, 4000: 200}[start]
        store.append_metric_batch(mixed_batch(run_id, "w1", start, n, 9))
    rows = store.get_metric_rows([run_id])
    assert [r.seq for r in rows] == list(range(4200))


def test_a_name_listed_twice_is_one_metric(store: SqlStore) -> None:
    """A spool may list a name again (a series defined twice): its rows are one metric, as rows would be."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    batch = mixed_batch(run_id, "w1", 0, 300, 5)
    twice = dataclasses.replace(
        batch,
        names=[*NAMES, "loss"],
        name_ids=[4 if i % 2 and n == 0 else n for i, n in enumerate(batch.name_ids)],
    )
    store.append_metric_batch(twice)
    store.append_metrics(unnumbered(batch.rows(), reference))
    assert_same_metrics(store, run_id, reference)


def test_names_with_tabs_newlines_backslashes_and_accents(store: SqlStore) -> None:
    """Metric names may hold any character but NUL: COPY's text format and SQLite's binding keep them."""
    run_id, reference = make_run(store, "exp").run_id, make_run(store, "exp").run_id
    odd = ["a\tb", "line\nbreak", "back\\slash", "Genauigkeit/Größe", "'quoted' \"too\"", "\\N"]
    batch = dataclasses.replace(
        mixed_batch(run_id, "w1", 0, 120, 2), names=odd, name_ids=[i % len(odd) for i in range(120)]
    )
    store.append_metric_batch(batch)
    store.append_metrics(unnumbered(batch.rows(), reference))
    assert sorted({r.name for r in store.get_metric_rows([run_id])}) == sorted(odd)
    assert table_contents(store, run_id) == table_contents(store, reference)
