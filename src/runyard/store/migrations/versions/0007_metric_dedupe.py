"""A metric row is stored once per (run_id, writer, seq): deduplicate, then make that unique.

Older clients resent batches the server had already stored (a lost response, or a whole batch
re-queued when one of its chunks failed), so a database can hold the same row several times. This
migration keeps the first copy of each (run_id, writer, seq) (the lowest id, the one written in log
order), deletes the others, rebuilds the metric summary and the rollups of every series that lost a
row, and then adds the unique index that lets append_metrics insert with ON CONFLICT DO NOTHING.
Rows without a writer or seq are left alone (NULLs are distinct in a unique index on both databases).

The summary and bucket logic is copied here on purpose, as in 0005: a migration must keep doing what it
did when it was written. It matches store/sql_metrics.py: only scalar rows with a value count; a value's
index is its 0-based position in its series in id order; x is its step, or its index when it has none;
ties keep the earliest value; last is the value (and step) of the highest id.

Revision ID: 0007
Revises: 0006
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SIZES = (64, 4096)  # level 0 and level 1 bucket sizes (schema.ROLLUP_SIZES at this revision)
PAGE = 10_000  # metric rows read per query
FLUSH = 5_000  # rollup rows written per executemany

_METRIC_COLUMNS = ("id", "run_id", "name", "kind", "value", "step", "writer", "seq")
_SUMMARY_COLUMNS = ("run_id", "name", "count", "last_value", "min_value", "max_value", "last_step")
_ROLLUP_COLUMNS = (
    "run_id",
    "name",
    "level",
    "bucket",
    "count",
    "min_value",
    "min_x",
    "max_value",
    "max_x",
    "first_x",
    "last_x",
)


def upgrade() -> None:
    conn = op.get_bind()
    affected = _delete_duplicates(conn)
    for run_id, name in sorted(affected):
        _rebuild_series(conn, run_id, name)
    op.drop_index("ix_metrics_run_writer_seq", "metrics")
    op.create_index("uq_metrics_run_writer_seq", "metrics", ["run_id", "writer", "seq"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_metrics_run_writer_seq", "metrics")
    op.create_index("ix_metrics_run_writer_seq", "metrics", ["run_id", "writer", "seq"])


def _tables() -> tuple[sa.TableClause, sa.TableClause, sa.TableClause]:
    metrics = sa.table("metrics", *(sa.column(c) for c in _METRIC_COLUMNS))
    summaries = sa.table("metric_summaries", *(sa.column(c) for c in _SUMMARY_COLUMNS))
    rollups = sa.table("metric_rollups", *(sa.column(c) for c in _ROLLUP_COLUMNS))
    return metrics, summaries, rollups


def _delete_duplicates(conn: sa.Connection) -> set[tuple[str, str]]:
    """Delete every copy but the first of each (run_id, writer, seq); returns the series that lost rows."""
    metrics, _, _ = _tables()
    m = metrics.c
    keep = (
        sa.select(m.run_id, m.writer, m.seq, sa.func.min(m.id).label("keep"))
        .where(m.writer.is_not(None), m.seq.is_not(None))
        .group_by(m.run_id, m.writer, m.seq)
        .having(sa.func.count() > 1)
        .subquery("keep")
    )
    extra = sa.select(m.id, m.run_id, m.name).join(
        keep,
        sa.and_(
            m.run_id == keep.c.run_id, m.writer == keep.c.writer, m.seq == keep.c.seq, m.id > keep.c.keep
        ),
    )
    affected: set[tuple[str, str]] = set()
    ids: list[int] = []
    for row in conn.execute(extra):
        affected.add((row.run_id, row.name))
        ids.append(row.id)
    for start in range(0, len(ids), PAGE):
        conn.execute(metrics.delete().where(m.id.in_(ids[start : start + PAGE])))
    return affected


class _Series:
    """The summary and rollup buckets of one series, fed its values in id order."""

    def __init__(self, conn: sa.Connection, run_id: str, name: str) -> None:
        self.conn, self.run_id, self.name = conn, run_id, name
        self.index = 0
        self.summary: dict[str, Any] | None = None
        # per level, the bucket being filled: [bucket, count, min, min_x, max, max_x, first_x, last_x]
        self.open: list[list[Any] | None] = [None] * len(SIZES)
        self.pending: list[dict[str, Any]] = []

    def add(self, value: float, step: int | None) -> None:
        s = self.summary
        if s is None:
            s = self.summary = {"count": 0, "min_value": value, "max_value": value}
        s["count"] += 1
        s["min_value"], s["max_value"] = min(s["min_value"], value), max(s["max_value"], value)
        s["last_value"], s["last_step"] = value, step
        x = self.index if step is None else step
        for level, size in enumerate(SIZES):
            bucket = self.index // size
            b = self.open[level]
            if b is None or b[0] != bucket:
                self._emit(level)
                b = self.open[level] = [bucket, 0, value, x, value, x, x, x]
            b[1] += 1
            if value < b[2]:
                b[2], b[3] = value, x
            if value > b[4]:
                b[4], b[5] = value, x
            b[7] = x
        self.index += 1

    def _emit(self, level: int) -> None:
        b = self.open[level]
        if b is None:
            return
        self.open[level] = None
        self.pending.append(dict(zip(_ROLLUP_COLUMNS, (self.run_id, self.name, level, *b), strict=True)))
        if len(self.pending) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        _, _, rollups = _tables()
        if self.pending:
            self.conn.execute(rollups.insert(), self.pending)
            self.pending = []

    def close(self) -> None:
        for level in range(len(SIZES)):
            self._emit(level)
        self.flush()
        if self.summary is not None:
            _, summaries, _ = _tables()
            self.conn.execute(summaries.insert().values(run_id=self.run_id, name=self.name, **self.summary))


def _rebuild_series(conn: sa.Connection, run_id: str, name: str) -> None:
    """Replace one series' summary and rollups with what its remaining rows give (keyset pages by id)."""
    metrics, summaries, rollups = _tables()
    m = metrics.c
    conn.execute(summaries.delete().where(summaries.c.run_id == run_id, summaries.c.name == name))
    conn.execute(rollups.delete().where(rollups.c.run_id == run_id, rollups.c.name == name))
    query = (
        sa.select(m.id, m.value, m.step)
        .where(m.run_id == run_id, m.name == name, m.kind == "scalar", m.value.is_not(None))
        .order_by(m.id)
        .limit(PAGE)
    )
    series = _Series(conn, run_id, name)
    after: int | None = None
    while True:
        rows = conn.execute(query if after is None else query.where(m.id > after)).all()
        for row in rows:
            series.add(row.value, row.step)
        if len(rows) < PAGE:
            break
        after = rows[-1].id
    series.close()
