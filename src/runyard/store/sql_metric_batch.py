"""One writer's scalars into the database column by column: a job's spool hands the store a MetricBatch,
and append_metrics hands over its rows the same way when they are numbered scalars of one writer and run
(what run.log sends, in a job, an interactive run or over the server's /metrics route).

The result is the row path's (SqlMetrics._append_once), row for row: each (run_id, writer, seq) is stored
once, only the rows actually inserted reach the summaries (count/last/min/max and MLflow's latest) and the
rollups, and ids follow the batch's order. What changes is the cost per value: no MetricRow, dict or
SQLAlchemy parameter per value. numpy computes each metric's summary and rollup buckets from the columns, and
the rows go in through the driver itself: one executemany of tuples on SQLite (one prepared statement),
COPY on PostgreSQL.

Concurrent resends, as in the row path: SQLite lets one writer in at a time (BEGIN IMMEDIATE), so the seqs
found stored are all there are. On PostgreSQL a resend can commit the same rows after this transaction
looked; COPY cannot skip them as ON CONFLICT does, so it fails on uq_metrics_run_writer_seq, which rolls back
everything this try did (summaries and rollups included), and the next try finds those rows stored.

numpy is imported on first use: a job process imports the store's records and rules, never this module's
dependencies, and a CLI command that never writes a metric does not pay for numpy.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from runyard.errors import StoreError
from runyard.store import schema as t
from runyard.store.records import MetricBatch, MetricRow
from runyard.store.schema import ROLLUP_SIZES
from runyard.store.sql_base import SqlBase
from runyard.store.validation import MetricColumns, validate_metric_batch

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class Raced(Exception):
    """Another transaction stored some of this batch's rows after we looked: roll back and look again."""


#: How often a batch is tried when a concurrent resend of the same rows wins the race (PostgreSQL).
RACE_ATTEMPTS = 5
#: PostgreSQL's unique_violation and deadlock_detected: a concurrent resend of the same rows.
_RACE_SQLSTATES = ("23505", "40P01")
_COLUMNS = ("run_id", "name", "kind", "step", "value", "is_nan", "payload", "timestamp", "writer", "seq")
#: Columns often the same on every row of a batch: (the value, as a SQL literal). payload is JSON text.
_CONSTANTS = {"kind": ("scalar", "'scalar'"), "is_nan": (None, "NULL"), "payload": ("null", "'null'")}
ROLLUP_COLUMNS = tuple(c.name for c in t.metric_rollups.columns)
#: The payload types a MetricBatch holds (run.log's: the int or bool logged, beside its float)
_PAYLOADS = {type(None), int, bool}
_POSTGRES_COPY = f"COPY metrics ({', '.join(_COLUMNS)}) FROM STDIN"


def sqlite_insert(constant: Iterable[str]) -> str:
    """The INSERT for a batch whose `constant` columns (of _CONSTANTS) hold their constant on every row."""
    literal = set(constant)
    values = (_CONSTANTS[c][1] if c in literal else "?" for c in _COLUMNS)
    return f"INSERT INTO metrics ({', '.join(_COLUMNS)}) VALUES ({', '.join(values)})"


def one_writer_batch(rows: Sequence[MetricRow]) -> MetricBatch | None:
    """`rows` as a MetricBatch when every one is a numbered scalar (no text; an int, bool or no payload) of
    one run and one writer; None otherwise, for the row path."""
    first = rows[0] if rows else None
    if first is None or first.writer is None:
        return None
    if {(r.run_id, r.writer, r.kind) for r in rows} != {(first.run_id, first.writer, "scalar")}:
        return None
    payloads = [r.payload for r in rows]
    if any(r.text is not None or r.seq is None for r in rows) or not set(map(type, payloads)) <= _PAYLOADS:
        return None
    ids: dict[str, int] = {}
    return MetricBatch(
        run_id=first.run_id,
        writer=first.writer,
        name_ids=[ids.setdefault(r.name, len(ids)) for r in rows],
        names=list(ids),
        steps=[r.step for r in rows],
        values=[r.value for r in rows],
        payloads=payloads,
        timestamps=[r.timestamp for r in rows],
        seqs=[r.seq for r in rows],  # type: ignore[misc]  # none is None (checked above)
    )


@dataclass
class _Series:
    """What one metric's new rows add: its summary upsert's parameters, and the values that count (no NaN),
    with their steps, for the rollups."""

    summary: dict[str, Any]
    values: NDArray[np.float64]
    steps: NDArray[np.int64]
    step_none: NDArray[np.bool_] | None


def _series(
    values: NDArray[np.float64],
    value_none: NDArray[np.bool_] | None,
    steps: NDArray[np.int64],
    step_none: NDArray[np.bool_] | None,
    times: NDArray[np.float64],
) -> _Series | None:
    """One metric's rows in log order; None when none has a value (no summary, as in the row path)."""
    import numpy as np

    candidates = np.arange(len(values)) if value_none is None else np.flatnonzero(~value_none)
    if not len(candidates):
        return None
    nan = np.isnan(values)  # a NaN or a None
    # MLflow's latest: the highest (step, timestamp, value), a missing step and NaN as 0, the first on a tie
    for key in (steps, times, np.where(nan, 0.0, values)):
        chosen = key[candidates]
        candidates = candidates[chosen == chosen.max()]
    latest = candidates[0]
    points = np.flatnonzero(~nan)
    summary = {
        "count": len(points),
        "last_value": None,
        "min_value": None,
        "max_value": None,
        "last_step": None,
        "latest_value": None if nan[latest] else float(values[latest]),
        "latest_step": int(steps[latest]),
        "latest_timestamp": float(times[latest]),
        "latest_is_nan": True if nan[latest] else None,
    }
    counted = values[points]
    if len(points):
        last = points[-1]
        summary["last_value"], summary["last_step"] = float(values[last]), int(steps[last])
        if step_none is not None and step_none[last]:
            summary["last_step"] = None
        # argmin/argmax give the first of equal values, as the row path keeps the earliest
        summary["min_value"] = float(counted[np.argmin(counted)])
        summary["max_value"] = float(counted[np.argmax(counted)])
    return _Series(summary, counted, steps[points], None if step_none is None else step_none[points])


def _first_extremes(values: NDArray[np.float64], starts: NDArray[np.intp], ufunc: Any) -> NDArray[np.intp]:
    """Index of the first minimum (ufunc np.minimum) or maximum of each stretch values[starts[i]:starts[i+1]]."""
    import numpy as np

    best = ufunc.reduceat(values, starts)
    hits = np.flatnonzero(values == np.repeat(best, np.diff(np.append(starts, len(values)))))
    return hits[np.searchsorted(hits, starts)]


def bucket_rows(run_id: str, name: str, start: int, series: _Series) -> list[tuple[Any, ...]]:
    """metric_rollups rows (ROLLUP_COLUMNS; every level, bucket order) for `series` appended at series index
    `start`: sql_metrics.rollup_rows, a bucket at a time instead of a value at a time."""
    import numpy as np

    count = len(series.values)
    index = np.arange(start, start + count, dtype=np.int64)
    x = series.steps if series.step_none is None else np.where(series.step_none, index, series.steps)
    values = series.values
    rows: list[tuple[Any, ...]] = []
    for level, size in enumerate(ROLLUP_SIZES if count else ()):
        bucket = index // size
        starts = np.flatnonzero(np.diff(bucket, prepend=-1))
        ends = np.append(starts[1:], count)
        low, high = _first_extremes(values, starts, np.minimum), _first_extremes(values, starts, np.maximum)
        columns = (
            bucket[starts],
            ends - starts,
            values[low],
            x[low],
            values[high],
            x[high],
            x[starts],
            x[ends - 1],
        )
        rows.extend(zip(repeat(run_id), repeat(name), repeat(level), *(c.tolist() for c in columns)))
    return rows


def _payload_json(payload: Any) -> str:
    """A payload as SQLAlchemy's JSON type writes it (json.dumps), for the usual ones without calling it."""
    if payload is None:
        return "null"
    if type(payload) is int:
        return str(payload)
    return json.dumps(payload)


class _Fresh:
    """The batch's rows still to store (all, or those at `index`), as columns, names made unique."""

    def __init__(self, batch: MetricBatch, columns: MetricColumns, index: NDArray[np.intp] | None) -> None:
        import numpy as np

        def take(array: Any) -> Any:
            return array if index is None or array is None else array[index]

        self.run_id, self.writer = batch.run_id, batch.writer
        first_id = {name: i for i, name in reversed(list(enumerate(batch.names)))}
        self.names = list(batch.names)
        self.name_ids = take(columns.name_ids)
        if len(first_id) < len(batch.names):  # a name listed twice is one metric
            self.name_ids = np.array([first_id[name] for name in batch.names])[self.name_ids]
        self.steps, self.step_none = take(columns.steps), take(columns.step_none)
        self.values, self.value_none = take(columns.values), take(columns.value_none)
        self.times, self.seqs = take(columns.timestamps), take(columns.seqs)
        payloads = batch.payloads
        self.payloads = payloads if index is None else [payloads[i] for i in index.tolist()]

    def series(self) -> Iterator[tuple[str, _Series]]:
        """Each metric's new rows, by name (the summaries' lock order)."""
        import numpy as np

        ids = self.name_ids
        groups: list[Any] = [None]
        if not bool((ids == ids[0]).all()):
            order = np.argsort(ids, kind="stable")
            groups = np.split(order, np.flatnonzero(np.diff(ids[order])) + 1)
        for name, g in sorted((self.names[ids[0 if g is None else g[0]]], g) for g in groups):
            take = (lambda a: a) if g is None else (lambda a, g=g: None if a is None else a[g])
            series = _series(
                *map(take, (self.values, self.value_none, self.steps, self.step_none, self.times))
            )
            if series is not None:
                yield name, series

    def columns(self) -> dict[str, Iterable[Any] | None]:
        """Each column's values in row order (_COLUMNS), for the driver: None where a step or value is
        missing, NaN as value NULL with is_nan true, payloads as JSON text. A column in _CONSTANTS that has
        its constant on every row is None instead: SQLite's INSERT then writes it as a literal, which saves
        binding a value per row (a fifth of the insert's time for kind, is_nan and payload together)."""
        import numpy as np

        ids = self.name_ids
        one_name = bool((ids == ids[0]).all())
        steps = self.steps.astype(object)
        if self.step_none is not None:
            steps[self.step_none] = None
        nan = np.isnan(self.values)
        values, is_nan = self.values.tolist(), None
        if nan.any():
            with_none = self.values.astype(object)
            with_none[nan] = None
            values = with_none.tolist()
            flags = np.full(len(nan), None, dtype=object)
            flags[nan if self.value_none is None else nan & ~self.value_none] = True
            is_nan = flags.tolist()
        all_none = set(map(type, self.payloads)) == {type(None)}
        return {
            "run_id": repeat(self.run_id),
            "name": repeat(self.names[ids[0]]) if one_name else np.array(self.names, object)[ids].tolist(),
            "kind": None,
            "step": steps.tolist(),
            "value": values,
            "is_nan": is_nan,
            "payload": None if all_none else [_payload_json(p) for p in self.payloads],
            "timestamp": self.times.tolist(),
            "writer": repeat(self.writer),
            "seq": self.seqs.tolist(),
        }


def first_copies(seqs: NDArray[np.int64]) -> NDArray[np.intp] | None:
    """Indexes of each seq's first row, in batch order; None when no seq repeats (always, for ascending)."""
    import numpy as np

    if len(seqs) < 2 or bool((seqs[1:] > seqs[:-1]).all()):
        return None
    _, first = np.unique(seqs, return_index=True)
    return np.sort(first) if len(first) < len(seqs) else None


@contextlib.contextmanager
def _as_sqlalchemy_errors(statement: str, dbapi: Any) -> Iterator[None]:
    """A driver's error as SQLAlchemy would have raised it, so that SqlBase._write explains it as usual."""
    try:
        yield
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


class SqlMetricBatch(SqlBase):
    """append_metric_batch, and the column path append_metrics takes for run.log's rows (SqlMetrics)."""

    # the upserts both paths share, built once by SqlMetrics (sql_metrics.py)
    _summary_upsert: Any
    _rollup_upsert: Any

    def append_metric_batch(self, batch: MetricBatch) -> None:
        """Store a column-wise batch of one writer's scalars in one transaction, as append_metrics stores the
        same rows: refused whole if a value breaks validate_metric_batch's rules, RunNotFound if the run is
        missing, each seq once, only new rows in the summaries and rollups."""
        self.append_columns(batch, validate_metric_batch(batch))

    def append_columns(self, batch: MetricBatch, columns: MetricColumns) -> None:
        """Store a batch already checked and turned into columns (validate_metric_batch)."""
        if not len(columns.seqs):
            return
        keep = first_copies(columns.seqs)
        self.retry_races(lambda: self._store_columns(batch, columns, keep))

    def retry_races(self, append: Callable[[], None]) -> None:
        """Run `append` (one transaction) until no concurrent resend of the same rows beats it."""
        for attempt in range(RACE_ATTEMPTS):
            try:
                append()
                return
            except Raced:
                if attempt == RACE_ATTEMPTS - 1:
                    raise StoreError(
                        f"The database at {self.uri} kept storing the same metric rows from another "
                        f"request while this one ran ({RACE_ATTEMPTS} tries); send the batch again."
                    ) from None

    def _store_columns(
        self, batch: MetricBatch, columns: MetricColumns, keep: NDArray[np.intp] | None
    ) -> None:
        import numpy as np

        with self._write() as conn:
            self._require_run(conn, batch.run_id)
            seqs = columns.seqs if keep is None else columns.seqs[keep]
            m = t.metrics
            stored = conn.execute(
                sa.select(m.c.seq).where(
                    m.c.run_id == batch.run_id,
                    m.c.writer == batch.writer,
                    m.c.seq.between(int(seqs.min()), int(seqs.max())),
                )
            ).scalars()
            stored_seqs = np.fromiter(stored, dtype=np.int64)
            if len(stored_seqs):
                new = np.flatnonzero(~np.isin(seqs, stored_seqs))
                if not len(new):
                    return
                keep = new if keep is None else keep[new]
            fresh = _Fresh(batch, columns, keep)
            rollups: list[tuple[Any, ...]] = []
            for name, series in fresh.series():
                count = conn.execute(
                    self._summary_upsert, {"run_id": batch.run_id, "name": name, **series.summary}
                ).scalar_one()
                # the summary row stays locked until commit (one writer at a time on SQLite), so this batch's
                # values are the metric's last series.summary["count"]
                rollups.extend(bucket_rows(batch.run_id, name, count - series.summary["count"], series))
            # the rows only now, holding the summary locks: on PostgreSQL concurrent batches of one metric
            # then get ids in the order of their series indexes (log order is id order)
            self._insert_rows(conn, fresh.columns())
            if rollups:  # in one statement, in (name, level, bucket) order: the fixed lock order again
                self._upsert_rollups(conn, rollups)

    def _insert_rows(self, conn: sa.Connection, by_column: dict[str, Iterable[Any] | None]) -> None:
        """The rows through the driver: executemany on SQLite, COPY on PostgreSQL."""
        dbapi, raw = conn.dialect.loaded_dbapi, cast(Any, conn.connection.driver_connection)
        if conn.dialect.name != "sqlite":
            every = [repeat(_CONSTANTS[c][0]) if v is None else v for c, v in by_column.items()]
            self._copy_rows(raw, dbapi, zip(*every, strict=False))
            return
        insert = sqlite_insert(c for c, values in by_column.items() if values is None)
        bound = [values for values in by_column.values() if values is not None]
        with _as_sqlalchemy_errors(insert, dbapi), contextlib.closing(raw.cursor()) as cursor:
            cursor.executemany(insert, zip(*bound, strict=False))  # run_id and writer are repeat()s

    def _upsert_rollups(self, conn: sa.Connection, rollups: list[tuple[Any, ...]]) -> None:
        if conn.dialect.name != "sqlite":
            conn.execute(self._rollup_upsert, [dict(zip(ROLLUP_COLUMNS, r, strict=True)) for r in rollups])
            return
        upsert, raw = self._rollup_upsert_sql, cast(Any, conn.connection.driver_connection)
        with (
            _as_sqlalchemy_errors(upsert, conn.dialect.loaded_dbapi),
            contextlib.closing(raw.cursor()) as cursor,
        ):
            cursor.executemany(upsert, rollups)

    @staticmethod
    def _copy_rows(raw: Any, dbapi: Any, rows: Iterable[tuple[Any, ...]]) -> None:
        """COPY the rows in (PostgreSQL); Raced when a concurrent resend committed some of them first."""
        try:
            with raw.cursor() as cursor, cursor.copy(_POSTGRES_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        except dbapi.Error as exc:
            if getattr(exc, "sqlstate", None) in _RACE_SQLSTATES:
                raise Raced() from exc
            raise sa.exc.DBAPIError.instance(_POSTGRES_COPY, None, exc, dbapi.Error) from exc

    @cached_property
    def _rollup_upsert_sql(self) -> str:
        """_rollup_upsert as SQLite's SQL, taking ROLLUP_COLUMNS positionally (SQLAlchemy's handling of
        ~800 parameter sets a batch of 50,000 values brings cost more than the upsert itself)."""
        compiled = self._rollup_upsert.compile(dialect=self.engine.dialect)
        assert tuple(compiled.positiontup or ()) == ROLLUP_COLUMNS, compiled.positiontup
        return str(compiled)
