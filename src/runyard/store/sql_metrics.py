"""Metric rows, their per-run summaries (last/min/max) and rollups, all kept current on every write.

A row numbered by its writer (writer, seq) is stored once: a client that resends a batch after a lost
answer, or a spool replay, adds nothing, and the summaries and rollups count only rows actually stored.

Rollups (schema.metric_rollups) hold the min and max, with their x, of each fixed-size stretch of a
scalar series, so a chart of a million values reads a few thousand rows (sql_studio.get_metric_chart).

MLflow logs NaN and ±inf (runyard's own API refuses them): ±inf is stored as it is, NaN as value NULL with
is_nan true. NaN counts for no count, last, min, max or rollup, but is a value for MLflow's "latest"
(latest_*): the row with the highest (step, timestamp, value), NaN and a missing step as 0, the first
stored on a tie.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from runyard.errors import RunNotFound
from runyard.store import schema as t
from runyard.store.records import MetricRow, MetricSummary
from runyard.store.schema import ROLLUP_SIZES
from runyard.store.sql_metric_batch import Raced, SqlMetricBatch, one_writer_batch
from runyard.store.validation import validate_metric_batch

#: [count, min_value, min_x, max_value, max_x, first_x, last_x] of a stretch of a series
Stats = list[Any]


def bucket_stats(
    start: int, points: Sequence[tuple[float, int | None]], size: int
) -> list[tuple[int, Stats]]:
    """Rollup stats of `points` ((value, step) in log order, the first at series index `start`), one entry
    per touched bucket of `size` values, in bucket order. Ties keep the earliest value's x."""
    out: list[tuple[int, Stats]] = []
    current = -1
    s: Stats = []
    for index, (value, step) in enumerate(points, start):
        x = index if step is None else step
        bucket = index // size
        if bucket != current:
            current, s = bucket, [0, value, x, value, x, x, x]
            out.append((bucket, s))
        s[0] += 1
        if value < s[1]:
            s[1], s[2] = value, x
        if value > s[3]:
            s[3], s[4] = value, x
        s[6] = x
    return out


def merge_stats(parts: Iterable[Stats]) -> Stats:
    """One stretch's stats from its consecutive sub-stretches' stats (in order)."""
    merged: Stats = []
    for p in parts:
        if not merged:
            merged = list(p)
            continue
        merged[0] += p[0]
        if p[1] < merged[1]:
            merged[1], merged[2] = p[1], p[2]
        if p[3] > merged[3]:
            merged[3], merged[4] = p[3], p[4]
        merged[6] = p[6]
    return merged


def rollup_rows(
    run_id: str, name: str, start: int, points: Sequence[tuple[float, int | None]]
) -> list[dict[str, Any]]:
    """metric_rollups rows (every level) for `points` appended at series index `start`."""
    finest = bucket_stats(start, points, ROLLUP_SIZES[0])
    rows: list[dict[str, Any]] = []
    for level, size in enumerate(ROLLUP_SIZES):
        if level == 0:
            grouped = finest
        else:
            per = size // ROLLUP_SIZES[0]  # finer buckets nest inside coarser ones
            grouped = []
            for bucket, s in finest:
                if grouped and grouped[-1][0] == bucket // per:
                    grouped[-1] = (bucket // per, merge_stats([grouped[-1][1], s]))
                else:
                    grouped.append((bucket // per, s))
        rows.extend(
            {
                "run_id": run_id,
                "name": name,
                "level": level,
                "bucket": bucket,
                "count": s[0],
                "min_value": s[1],
                "min_x": s[2],
                "max_value": s[3],
                "max_x": s[4],
                "first_x": s[5],
                "last_x": s[6],
            }
            for bucket, s in grouped
        )
    return rows


def _key(row: MetricRow) -> tuple[str, str, int] | None:
    """The identity of a numbered row; None for a row without a writer or seq (never a duplicate)."""
    if row.writer is None or row.seq is None:
        return None
    return (row.run_id, row.writer, row.seq)


def _first_copies(rows: Sequence[MetricRow]) -> list[MetricRow]:
    """`rows` without repeats of a (run_id, writer, seq) within the batch (the first copy wins)."""
    seen: set[tuple[str, str, int]] = set()
    out: list[MetricRow] = []
    for r in rows:
        key = _key(r)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _stored_keys(conn: sa.Connection, rows: Sequence[MetricRow]) -> set[tuple[str, str, int] | None]:
    """Which of the batch's (run_id, writer, seq) are already stored: one range query per (run, writer),
    served by the unique index (a writer's batch is usually one contiguous stretch of seqs)."""
    ranges: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        key = _key(r)
        if key is not None:
            lo_hi = ranges.setdefault((key[0], key[1]), [key[2], key[2]])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], key[2]), max(lo_hi[1], key[2])
    m = t.metrics
    stored: set[tuple[str, str, int] | None] = set()
    for (run_id, writer), (lo, hi) in sorted(ranges.items()):
        query = sa.select(m.c.seq).where(m.c.run_id == run_id, m.c.writer == writer, m.c.seq.between(lo, hi))
        stored.update((run_id, writer, seq) for seq in conn.execute(query).scalars())
    return stored


def _latest_key(r: MetricRow) -> tuple[int, float, float]:
    """What MLflow compares to find a metric's latest value: (step, timestamp, value), NaN as 0."""
    value = 0.0 if r.value is None or math.isnan(r.value) else r.value
    return (r.step or 0, r.timestamp, value)


def _metric_values(r: MetricRow) -> dict[str, Any]:
    nan = r.value is not None and math.isnan(r.value)
    return {
        "run_id": r.run_id,
        "name": r.name,
        "kind": r.kind,
        "step": r.step,
        "value": None if nan else r.value,
        "is_nan": True if nan else None,  # NULL means "not NaN", as on rows from before 0012
        "text": r.text,
        "payload": r.payload,
        "timestamp": r.timestamp,
        "writer": r.writer,
        "seq": r.seq,
    }


class SqlMetrics(SqlMetricBatch):
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Store `rows` in one transaction, each (run_id, writer, seq) once: a resent batch, or the rows of
        it that are already stored, are skipped, and only the rows actually inserted reach the summaries
        and rollups. Rows without a writer or seq are always inserted. RunNotFound if a run is missing.

        Numbered scalars of one writer and run (run.log's batches) take the column-wise path
        (sql_metric_batch), which stores the same rows, summaries and rollups; the rest go row by row."""
        batch = one_writer_batch(rows)
        if batch is not None:
            # SqlStore checked the rows; MLflow's door lets NaN and ±inf through, and so does this
            self.append_columns(batch, validate_metric_batch(batch, non_finite=True))
            return
        fresh = _first_copies(rows)
        if fresh:
            self.retry_races(lambda: self._append_once(fresh))

    def _append_once(self, rows: list[MetricRow]) -> None:
        with self._write() as conn:
            wanted = {r.run_id for r in rows}
            found = set(conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(wanted))).scalars())
            if wanted - found:
                raise RunNotFound(sorted(wanted - found)[0], self.where)
            stored = _stored_keys(conn, rows)
            new = [r for r in rows if _key(r) not in stored]
            if not new:
                return
            summaries: dict[tuple[str, str], dict[str, Any]] = {}
            points: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
            for r in new:
                if r.kind != "scalar" or r.value is None:
                    continue
                s = summaries.setdefault(
                    (r.run_id, r.name),
                    {"count": 0, "min": None, "max": None, "last": None, "step": None, "latest": r},
                )
                if _latest_key(r) > _latest_key(s["latest"]):
                    s["latest"] = r
                if math.isnan(r.value):
                    continue  # a NaN is MLflow's latest value at most; never a count, min, max or point
                s["count"] += 1
                s["last"], s["step"] = r.value, r.step
                s["min"] = r.value if s["min"] is None else min(s["min"], r.value)
                s["max"] = r.value if s["max"] is None else max(s["max"], r.value)
                points.setdefault((r.run_id, r.name), []).append((r.value, r.step))
            rollups: list[dict[str, Any]] = []
            # Upsert in one fixed order so that concurrent batches naming the same metrics in different
            # orders lock the summary rows in the same order (PostgreSQL would otherwise deadlock).
            for (run_id, name), s in sorted(summaries.items()):
                latest: MetricRow = s["latest"]
                latest_nan = math.isnan(latest.value or 0.0)
                new_count = conn.execute(
                    self._summary_upsert,
                    {
                        "run_id": run_id,
                        "name": name,
                        "count": s["count"],
                        "last_value": s["last"],
                        "min_value": s["min"],
                        "max_value": s["max"],
                        "last_step": s["step"],
                        "latest_value": None if latest_nan else latest.value,
                        "latest_step": latest.step or 0,
                        "latest_timestamp": latest.timestamp,
                        "latest_is_nan": True if latest_nan else None,
                    },
                ).scalar_one()
                # The summary row stays locked until commit (PostgreSQL; SQLite has one writer at a time),
                # so no other batch can take these indexes: this batch's values are the last s["count"].
                batch_points = points.get((run_id, name), [])
                rollups.extend(rollup_rows(run_id, name, new_count - s["count"], batch_points))
            # Insert the rows only now, holding the summary locks: on PostgreSQL, concurrent batches of one
            # metric then get ids in the same order as their series indexes, so log order is id order.
            values = [_metric_values(r) for r in new]
            if self.engine.dialect.name == "sqlite":
                # one writer at a time (BEGIN IMMEDIATE): nothing can have been stored since _stored_keys
                conn.execute(self._metric_insert, values)
            # On PostgreSQL a row another transaction committed since _stored_keys looked (a resend racing
            # its original) is skipped by the unique index; the summaries above counted it, so start over.
            elif len(conn.execute(self._metric_insert_returning, values).all()) != len(new):
                raise Raced()
            if rollups:
                # one statement for every touched bucket, in (run_id, name, level, bucket) order: the
                # fixed lock order again
                conn.execute(self._rollup_upsert, rollups)

    @cached_property
    def _metric_insert(self) -> Any:
        """INSERT … ON CONFLICT (run_id, writer, seq) DO NOTHING."""
        return self._insert(t.metrics).on_conflict_do_nothing(index_elements=["run_id", "writer", "seq"])

    @cached_property
    def _metric_insert_returning(self) -> Any:
        """The same, returning one row per row stored (PostgreSQL: to notice a concurrent resend)."""
        return self._metric_insert.returning(t.metrics.c.id)

    @cached_property
    def _summary_upsert(self) -> Any:
        """Add a batch's count/min/max to a metric's summary; returns the new count. Built once: building
        the statement costs more than running it."""
        ms = t.metric_summaries
        stmt = self._insert(ms)
        ex = stmt.excluded
        # a batch of NaNs only (count 0) leaves last/min/max as they are
        valued = ex["count"] > 0
        # MLflow's latest: the batch's replaces the stored one if its (step, timestamp, value) is higher
        new_v, old_v = sa.func.coalesce(ex.latest_value, 0.0), sa.func.coalesce(ms.c.latest_value, 0.0)
        newer = sa.or_(
            ms.c.latest_step.is_(None),
            ex.latest_step > ms.c.latest_step,
            sa.and_(
                ex.latest_step == ms.c.latest_step,
                sa.or_(
                    ex.latest_timestamp > ms.c.latest_timestamp,
                    sa.and_(ex.latest_timestamp == ms.c.latest_timestamp, new_v > old_v),
                ),
            ),
        )
        latest = {
            name: sa.case((newer, ex[name]), else_=ms.c[name])
            for name in ("latest_value", "latest_step", "latest_timestamp", "latest_is_nan")
        }
        return stmt.on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={
                "count": ms.c["count"] + ex["count"],
                "last_value": sa.case((valued, ex.last_value), else_=ms.c.last_value),
                "last_step": sa.case((valued, ex.last_step), else_=ms.c.last_step),
                "min_value": sa.case(
                    (sa.or_(ms.c.min_value.is_(None), ex.min_value < ms.c.min_value), ex.min_value),
                    else_=ms.c.min_value,
                ),
                "max_value": sa.case(
                    (sa.or_(ms.c.max_value.is_(None), ex.max_value > ms.c.max_value), ex.max_value),
                    else_=ms.c.max_value,
                ),
                **latest,
            },
        ).returning(ms.c["count"])

    @cached_property
    def _rollup_upsert(self) -> Any:
        """Merge a batch's stats for one bucket into the stored bucket (first_x stays, last_x moves on)."""
        mr = t.metric_rollups
        stmt = self._insert(mr)
        ex = stmt.excluded
        lower, higher = ex.min_value < mr.c.min_value, ex.max_value > mr.c.max_value
        return stmt.on_conflict_do_update(
            index_elements=["run_id", "name", "level", "bucket"],
            set_={
                "count": mr.c["count"] + ex["count"],
                "min_value": sa.case((lower, ex.min_value), else_=mr.c.min_value),
                "min_x": sa.case((lower, ex.min_x), else_=mr.c.min_x),
                "max_value": sa.case((higher, ex.max_value), else_=mr.c.max_value),
                "max_x": sa.case((higher, ex.max_x), else_=mr.c.max_x),
                "last_x": ex.last_x,
            },
        )

    def get_metric_rows(
        self, run_ids: Sequence[str], name: str | None = None, kinds: Sequence[str] | None = None
    ) -> list[MetricRow]:
        """`kinds` (SqlStore only) narrows to some row kinds, e.g. the studio's tables and images."""
        query = sa.select(t.metrics).where(t.metrics.c.run_id.in_(list(run_ids)))
        if name is not None:
            query = query.where(t.metrics.c.name == name)
        if kinds is not None:
            query = query.where(t.metrics.c.kind.in_(list(kinds)))
        with self._read() as conn:
            return [
                MetricRow(
                    run_id=r.run_id,
                    name=r.name,
                    kind=r.kind,
                    timestamp=r.timestamp,
                    value=math.nan if r.is_nan else r.value,
                    text=r.text,
                    payload=r.payload,
                    step=r.step,
                    writer=r.writer,
                    seq=r.seq,
                )
                for r in conn.execute(query.order_by(t.metrics.c.id))
            ]

    def get_metric_summaries(self, run_ids: Sequence[str]) -> list[MetricSummary]:
        ms = t.metric_summaries
        with self._read() as conn:
            # a metric logged as NaN only (MLflow) has a summary for its latest value, but no value here
            rows = conn.execute(
                sa.select(ms)
                .where(ms.c.run_id.in_(list(run_ids)), ms.c["count"] > 0)
                .order_by(ms.c.run_id, ms.c.name)
            )
            return [
                MetricSummary(
                    run_id=r.run_id,
                    name=r.name,
                    count=r._mapping["count"],
                    last=r.last_value,
                    min=r.min_value,
                    max=r.max_value,
                    last_step=r.last_step,
                )
                for r in rows
            ]

    def last_metric_seq(self, run_id: str, writer: str) -> int:
        m = t.metrics
        with self._read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(m.c.seq)).where(m.c.run_id == run_id, m.c.writer == writer)
            ).scalar()
        return -1 if value is None else int(value)

    def count_metric_rows(self, run_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.metrics)
        if run_id is not None:
            query = query.where(t.metrics.c.run_id == run_id)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())
