"""Metric rows and their per-run summaries (last/min/max kept current on every write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import RunNotFound
from runyard.store import schema as t
from runyard.store.records import MetricRow, MetricSummary
from runyard.store.sql_base import SqlBase


class SqlMetrics(SqlBase):
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        if not rows:
            return
        summaries: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            if r.kind != "scalar" or r.value is None:
                continue
            s = summaries.setdefault((r.run_id, r.name), {"count": 0, "min": r.value, "max": r.value})
            s["count"] += 1
            s["last"], s["step"] = r.value, r.step
            s["min"], s["max"] = min(s["min"], r.value), max(s["max"], r.value)
        with self._write() as conn:
            wanted = {r.run_id for r in rows}
            found = set(conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(wanted))).scalars())
            if wanted - found:
                raise RunNotFound(sorted(wanted - found)[0], self.where)
            conn.execute(
                t.metrics.insert(),
                [
                    {
                        "run_id": r.run_id,
                        "name": r.name,
                        "kind": r.kind,
                        "step": r.step,
                        "value": r.value,
                        "text": r.text,
                        "payload": r.payload,
                        "timestamp": r.timestamp,
                        "writer": r.writer,
                        "seq": r.seq,
                    }
                    for r in rows
                ],
            )
            ms = t.metric_summaries
            # Upsert in one fixed order so that concurrent batches naming the same metrics in different
            # orders lock the summary rows in the same order (PostgreSQL would otherwise deadlock).
            for (run_id, name), s in sorted(summaries.items()):
                stmt = self._insert(ms).values(
                    run_id=run_id,
                    name=name,
                    count=s["count"],
                    last_value=s["last"],
                    min_value=s["min"],
                    max_value=s["max"],
                    last_step=s["step"],
                )
                ex = stmt.excluded
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "name"],
                        set_={
                            "count": ms.c["count"] + ex["count"],
                            "last_value": ex.last_value,
                            "last_step": ex.last_step,
                            "min_value": sa.case(
                                (ex.min_value < ms.c.min_value, ex.min_value), else_=ms.c.min_value
                            ),
                            "max_value": sa.case(
                                (ex.max_value > ms.c.max_value, ex.max_value), else_=ms.c.max_value
                            ),
                        },
                    )
                )

    def get_metric_rows(self, run_ids: Sequence[str], name: str | None = None) -> list[MetricRow]:
        query = sa.select(t.metrics).where(t.metrics.c.run_id.in_(list(run_ids)))
        if name is not None:
            query = query.where(t.metrics.c.name == name)
        with self._read() as conn:
            return [
                MetricRow(
                    run_id=r.run_id,
                    name=r.name,
                    kind=r.kind,
                    timestamp=r.timestamp,
                    value=r.value,
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
            rows = conn.execute(
                sa.select(ms).where(ms.c.run_id.in_(list(run_ids))).order_by(ms.c.run_id, ms.c.name)
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
