"""Metric rollups for fast charts of huge series, and indexes for the studio's runs page.

Creates metric_rollups and fills it from the metrics already logged: the scalar rows are read in
(run_id, name, id) order a page at a time (keyset pagination, so memory stays bounded however many rows
there are) and each bucket is written once it is complete.

The bucket logic is copied here on purpose rather than imported: a migration must keep doing what it
did when it was written, whatever later code changes. It matches store/sql_metrics.py: a value's index
is its 0-based position among its series' scalar rows with a value; x is its step, or its index when it
has none; ties keep the earliest value.

Revision ID: 0005
Revises: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SIZES = (64, 4096)  # level 0 and level 1 bucket sizes (schema.ROLLUP_SIZES at this revision)
PAGE = 10_000  # metric rows read per query
FLUSH = 5_000  # rollup rows written per executemany


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("min_value", sa.Float, nullable=False),
        sa.Column("min_x", sa.BigInteger, nullable=False),
        sa.Column("max_value", sa.Float, nullable=False),
        sa.Column("max_x", sa.BigInteger, nullable=False),
        sa.Column("first_x", sa.BigInteger, nullable=False),
        sa.Column("last_x", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_runs_created", "runs", ["created_time"])
    # replaces ix_runs_parent: serves the same lookups, and top-level runs newest first without a sort
    op.create_index("ix_runs_parent_created", "runs", ["parent_id", "created_time", "number"])
    op.drop_index("ix_runs_parent", "runs")
    for agg in ("last", "min", "max"):  # the runs table sorted by a metric reads these in order
        op.create_index(f"ix_metric_summaries_{agg}", "metric_summaries", ["name", f"{agg}_value", "run_id"])
    _backfill(op.get_bind())


def downgrade() -> None:
    for agg in ("last", "min", "max"):
        op.drop_index(f"ix_metric_summaries_{agg}", "metric_summaries")
    op.create_index("ix_runs_parent", "runs", ["parent_id"])
    op.drop_index("ix_runs_parent_created", "runs")
    op.drop_index("ix_runs_created", "runs")
    op.drop_table("metric_rollups")


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


class _Backfill:
    """Accumulates one series at a time; a bucket is written when the series moves past it."""

    def __init__(self, conn: sa.Connection, table: sa.TableClause) -> None:
        self.conn, self.table = conn, table
        self.key: tuple[str, str] | None = None
        self.index = 0
        # per level, the bucket being filled: [bucket, count, min, min_x, max, max_x, first_x, last_x]
        self.open: list[list[Any] | None] = [None] * len(SIZES)
        self.pending: list[dict[str, Any]] = []

    def add(self, run_id: str, name: str, value: float, step: int | None) -> None:
        if self.key != (run_id, name):
            self.close_series()
            self.key, self.index = (run_id, name), 0
        x = self.index if step is None else step
        for level, size in enumerate(SIZES):
            bucket = self.index // size
            s = self.open[level]
            if s is None or s[0] != bucket:
                self._emit(level)
                s = self.open[level] = [bucket, 0, value, x, value, x, x, x]
            s[1] += 1
            if value < s[2]:
                s[2], s[3] = value, x
            if value > s[4]:
                s[4], s[5] = value, x
            s[7] = x
        self.index += 1

    def _emit(self, level: int) -> None:
        s = self.open[level]
        if s is None or self.key is None:
            return
        self.open[level] = None
        run_id, name = self.key
        self.pending.append(dict(zip(_ROLLUP_COLUMNS, (run_id, name, level, *s), strict=True)))
        if len(self.pending) >= FLUSH:
            self.flush()

    def close_series(self) -> None:
        for level in range(len(SIZES)):
            self._emit(level)

    def flush(self) -> None:
        if self.pending:
            self.conn.execute(self.table.insert(), self.pending)
            self.pending = []


def _backfill(conn: sa.Connection) -> None:
    metrics = sa.table("metrics", *(sa.column(c) for c in ("id", "run_id", "name", "kind", "value", "step")))
    rollups = sa.table("metric_rollups", *(sa.column(c) for c in _ROLLUP_COLUMNS))
    m = metrics.c
    query = (
        sa.select(m.run_id, m.name, m.id, m.value, m.step)
        .where(m.kind == "scalar", m.value.is_not(None))
        .order_by(m.run_id, m.name, m.id)
        .limit(PAGE)
    )
    backfill = _Backfill(conn, rollups)
    after: tuple[str, str, int] | None = None
    while True:
        page = query if after is None else query.where(sa.tuple_(m.run_id, m.name, m.id) > sa.tuple_(*after))
        rows = conn.execute(page).all()
        for row in rows:
            backfill.add(row.run_id, row.name, row.value, row.step)
        if len(rows) < PAGE:
            break
        last = rows[-1]
        after = (last.run_id, last.name, last.id)
    backfill.close_series()
    backfill.flush()
