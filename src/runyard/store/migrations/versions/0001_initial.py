"""Initial schema: experiments, runs, tags, properties, metrics, metric summaries, models.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_time", sa.Float, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(256), primary_key=True),
        sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("parent_id", sa.String(256), nullable=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("run_type", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("start_time", sa.Float, nullable=True),
        sa.Column("end_time", sa.Float, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("experiment_id", "number", name="uq_runs_experiment_number"),
    )
    op.create_index("ix_runs_experiment_created", "runs", ["experiment_id", "created_time"])
    op.create_index("ix_runs_parent", "runs", ["parent_id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=True),
    )
    op.create_table(
        "run_properties",
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("writer", sa.String(64), nullable=True),
        sa.Column("seq", sa.Integer, nullable=True),
    )
    op.create_index("ix_metrics_run_name", "metrics", ["run_id", "name", "id"])
    op.create_index("ix_metrics_run_writer_seq", "metrics", ["run_id", "writer", "seq"])
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_value", sa.Float, nullable=True),
        sa.Column("min_value", sa.Float, nullable=True),
        sa.Column("max_value", sa.Float, nullable=True),
        sa.Column("last_step", sa.Integer, nullable=True),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(256), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "models",
        "metric_summaries",
        "metrics",
        "run_properties",
        "run_tags",
        "runs",
        "experiments",
    ):
        op.drop_table(table)
