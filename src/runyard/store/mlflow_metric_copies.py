"""MLflow's rule that a metric row is stored once: MLflow keys a metric on (run, key, timestamp, step, value,
is_nan) and drops exact copies, and MLflow 3's `log_model` resends every metric of the model's step (with
model_id) through log_batch, so without this rule each of them would be stored twice. runyard's own
Run.log may repeat a value (append_metrics keeps repeats), so only the MLflow door applies it.

Cheap on a growing series: a row after its metric's MLflow latest (step, timestamp) cannot be a copy (the
latest holds the highest step, then that step's latest timestamp), so a training loop logging new steps
reads one summary row per metric; only rows at or before the latest are looked up in `metrics`, in one
query per run and chunk, served by ix_metrics_run_name. The same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard.store import schema as t
from runyard.store.records import MetricRow

#: Rows looked up in one statement (four bound lists of at most this many values stay under SQLite's limit).
_CHUNK = 2_500


def _identity(
    run_id: str, name: str, timestamp: float, step: int | None, value: float | None
) -> tuple[Any, ...]:
    """MLflow's identity of a metric row (its primary key): NaN is one value here, equal to itself."""
    nan = value is not None and math.isnan(value)
    return (run_id, name, timestamp, step, None if nan else value, nan)


def without_stored_copies(conn: sa.Connection, rows: Sequence[MetricRow]) -> list[MetricRow]:
    """`rows` less exact copies of rows already stored or earlier in the batch (the first copy stays)."""
    batch: dict[tuple[Any, ...], MetricRow] = {}
    for r in rows:
        batch.setdefault(_identity(r.run_id, r.name, r.timestamp, r.step, r.value), r)
    if not batch:
        return []
    ms, m = t.metric_summaries, t.metrics
    latest = {
        (s.run_id, s.name): (s.latest_step, s.latest_timestamp)
        for s in conn.execute(
            sa.select(ms.c.run_id, ms.c.name, ms.c.latest_step, ms.c.latest_timestamp).where(
                ms.c.run_id.in_(sorted({r.run_id for r in batch.values()})),
                ms.c.name.in_(sorted({r.name for r in batch.values()})),
                ms.c.latest_step.is_not(None),
            )
        )
    }
    maybe: dict[str, list[MetricRow]] = {}
    for r in batch.values():
        last = latest.get((r.run_id, r.name))
        if last is not None and (r.step or 0, r.timestamp) <= (last[0], last[1]):
            maybe.setdefault(r.run_id, []).append(r)
    stored: set[tuple[Any, ...]] = set()
    for run_id, candidates in sorted(maybe.items()):
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start : start + _CHUNK]
            found = conn.execute(
                sa.select(m.c.name, m.c.timestamp, m.c.step, m.c.value, m.c.is_nan).where(
                    m.c.run_id == run_id,
                    m.c.name.in_({r.name for r in chunk}),
                    m.c.timestamp.in_({r.timestamp for r in chunk}),
                    m.c.step.in_({r.step for r in chunk if r.step is not None}),
                    m.c.kind == "scalar",
                )
            )
            stored.update(
                _identity(run_id, f.name, f.timestamp, f.step, math.nan if f.is_nan else f.value)
                for f in found
            )
    return [r for key, r in batch.items() if key not in stored]
