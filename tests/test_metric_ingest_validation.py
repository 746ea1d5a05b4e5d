"""A MetricBatch is refused by the row path's rules, with the row path's message, and nothing of it is written.

validate_metric_batch checks a column at a time; for every fault the row path also has a rule for, the
message must be exactly the one append_metrics gives for the same values as rows (the first faulty row's,
in the row checks' order). The checks run before the database is touched, so the matrices of faults run on
a real SQLite file; that nothing is written is checked on SQLite and PostgreSQL both.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runyard.errors import InvalidInputError
from runyard.store.records import MetricBatch
from runyard.store.sql_store import SqlStore
from store_suite import make_run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'runyard.db'}")
    yield store
    store.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    uri = f"sqlite:///{tmp_path / 'runyard.db'}" if request.param == "sqlite" else None
    store = SqlStore(uri or str(request.getfixturevalue("postgres_uri")))
    yield store
    store.engine.dispose()


def good_batch(run_id: str, n: int = 6) -> MetricBatch:
    return MetricBatch(
        run_id=run_id,
        writer="host-1-abc",
        names=["loss", "acc"],
        name_ids=[i % 2 for i in range(n)],
        steps=list(range(n)),
        values=[0.5 * i for i in range(n)],
        payloads=[None] * n,
        timestamps=[1_700_000_000.0 + i for i in range(n)],
        seqs=list(range(n)),
    )


def with_faults(batch: MetricBatch, **faults: dict[int, Any]) -> MetricBatch:
    """`batch` with column[row] = value for each {row: value} given by column name."""
    columns = {}
    for column, at in faults.items():
        values = list(getattr(batch, column))
        for row, value in at.items():
            values[row] = value
        columns[column] = values
    return dataclasses.replace(batch, **columns)


def assert_refused(store: SqlStore, run_id: str, batch: MetricBatch, match: str | None = None) -> str:
    """The batch is refused (InvalidInputError), nothing is written; returns the message."""
    with pytest.raises(InvalidInputError, match=match) as refused:
        store.append_metric_batch(batch)
    assert store.count_metric_rows(run_id) == 0
    assert store.get_metric_summaries([run_id]) == []
    return str(refused.value)


def assert_refused_as_rows_are(store: SqlStore, run_id: str, batch: MetricBatch) -> None:
    """Refused with the very message append_metrics gives for the same values as rows."""
    message = assert_refused(store, run_id, batch)
    with pytest.raises(InvalidInputError) as as_rows:
        store.append_metrics(batch.rows())
    assert message == str(as_rows.value)
    assert store.count_metric_rows(run_id) == 0


ROW_RULES = {
    "NaN value": {"values": {3: math.nan}},
    "infinite value": {"values": {3: math.inf}},
    "negative infinity": {"values": {0: -math.inf}},
    "bool value": {"values": {2: True}},
    "text value": {"values": {2: "1.5"}},
    "int beyond float": {"values": {1: 10**400}},
    "step beyond int64": {"steps": {4: 2**63}},
    "step below int64": {"steps": {4: -(2**63) - 1}},
    "float step": {"steps": {4: 1.5}},
    "bool step": {"steps": {1: True}},
    "NaN timestamp": {"timestamps": {5: math.nan}},
    "text timestamp": {"timestamps": {5: "now"}},
    "missing timestamp": {"timestamps": {5: None}},
    "seq beyond int64": {"seqs": {2: 2**64}},
    "NaN payload": {"payloads": {2: math.nan}},
    # several faults: the row path names the first row's, and a row's name before its value
    "value before a later step": {"values": {1: math.nan}, "steps": {3: 2**70}},
    "step before a later value": {"values": {4: math.nan}, "steps": {2: 2**70}},
    "value before timestamp in one row": {"values": {2: math.inf}, "timestamps": {2: math.nan}},
    "step before seq in one row": {"steps": {2: 2.5}, "seqs": {2: 2**64}},
}


@pytest.mark.parametrize("faults", list(ROW_RULES.values()), ids=list(ROW_RULES))
def test_refused_with_the_row_paths_message(store: SqlStore, faults: dict[str, dict[int, Any]]) -> None:
    run_id = make_run(store, "exp").run_id
    assert_refused_as_rows_are(store, run_id, with_faults(good_batch(run_id), **faults))


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "n" * 256, 7])
def test_bad_metric_names_are_refused_as_rows_are(store: SqlStore, name: Any) -> None:
    run_id = make_run(store, "exp").run_id
    batch = dataclasses.replace(good_batch(run_id), names=["loss", name])
    assert_refused_as_rows_are(store, run_id, batch)
    # a bad name on a later row still comes before a bad value on that row, and after an earlier fault
    assert_refused_as_rows_are(store, run_id, with_faults(batch, values={1: math.nan}))
    assert_refused_as_rows_are(store, run_id, with_faults(batch, values={0: math.nan}))


@pytest.mark.parametrize("writer", ["w" * 65, "a\nb", ""])
def test_a_bad_writer_is_refused_as_rows_are(store: SqlStore, writer: str) -> None:
    run_id = make_run(store, "exp").run_id
    batch = dataclasses.replace(good_batch(run_id), writer=writer)
    assert_refused_as_rows_are(store, run_id, batch)
    # the writer is every row's: a fault of row 0 comes first, any later row's after it
    assert_refused_as_rows_are(store, run_id, with_faults(batch, values={0: math.nan}))
    assert_refused_as_rows_are(store, run_id, with_faults(batch, values={3: math.nan}))


def test_a_bad_run_id_is_refused_as_rows_are(store: SqlStore) -> None:
    make_run(store, "exp")
    with pytest.raises(InvalidInputError) as from_batch:
        store.append_metric_batch(good_batch("a/b"))
    with pytest.raises(InvalidInputError) as from_rows:
        store.append_metrics(good_batch("a/b").rows())
    assert str(from_batch.value) == str(from_rows.value)
    assert store.count_metric_rows() == 0


@pytest.mark.parametrize("payload", [{"a": 1}, 1.5, "text", [1]])
def test_payloads_other_than_int_bool_none_are_refused(store: SqlStore, payload: Any) -> None:
    """The row path keeps any JSON payload (log_row's rows); a batch holds run.log's scalars only."""
    run_id = make_run(store, "exp").run_id
    message = assert_refused(store, run_id, with_faults(good_batch(run_id), payloads={4: payload}))
    assert message.startswith("Metric 'loss': payload") and "int, a bool or None" in message


def test_a_missing_seq_is_refused(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    message = assert_refused(store, run_id, with_faults(good_batch(run_id), seqs={3: None}))
    assert message.startswith("Metric 'acc' seq=None")


def test_a_float_array_of_seqs_is_refused(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    batch = dataclasses.replace(good_batch(run_id), seqs=np.arange(6, dtype=np.float64))
    assert_refused(store, run_id, batch, match=r"Metric 'loss' seq=0\.0 is not an integer")


@pytest.mark.parametrize(
    "change",
    [{"steps": [1, 2]}, {"names": ["loss"]}, {"name_ids": [0, 1, 2, 0, 1, 0]}, {"name_ids": [-1] * 6}],
    ids=["short column", "too few names", "name id past the end", "negative name id"],
)
def test_a_malformed_batch_is_refused(store: SqlStore, change: dict[str, Any]) -> None:
    run_id = make_run(store, "exp").run_id
    assert_refused(store, run_id, dataclasses.replace(good_batch(run_id), **change), match="MetricBatch")


def test_refused_batches_write_nothing_on_either_database(any_store: SqlStore) -> None:
    """Every fault above, on a batch whose other rows are good: not one row, summary or rollup is written;
    then the good batch is stored whole."""
    run_id = make_run(any_store, "exp").run_id
    batch = good_batch(run_id, n=200)
    for faults in [*ROW_RULES.values(), {"payloads": {0: {"a": 1}}}, {"seqs": {49: None}}]:
        shifted = {column: {row + 150: value for row, value in at.items()} for column, at in faults.items()}
        assert_refused(any_store, run_id, with_faults(batch, **shifted))
    assert_refused(any_store, run_id, dataclasses.replace(batch, writer="w" * 65))
    assert_refused(any_store, run_id, dataclasses.replace(batch, names=["loss", ""]))
    any_store.append_metric_batch(batch)
    assert any_store.count_metric_rows(run_id) == 200
    assert {s.name: s.count for s in any_store.get_metric_summaries([run_id])} == {"loss": 100, "acc": 100}
