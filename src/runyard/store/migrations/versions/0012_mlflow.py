"""MLflow: experiment lifecycle, tags and artifact location; run soft delete; NaN metrics; MLflow's latest
metric value (the one at the highest step); logged models.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("artifact_location", sa.Text, nullable=True))
        batch.add_column(sa.Column("last_update_time", sa.Float, nullable=True))
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("deleted_time", sa.Float, nullable=True))
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_time", "run_id"])
    op.add_column("metrics", sa.Column("is_nan", sa.Boolean, nullable=True))
    with op.batch_alter_table("metric_summaries") as batch:
        batch.add_column(sa.Column("latest_value", sa.Float, nullable=True))
        batch.add_column(sa.Column("latest_step", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("latest_timestamp", sa.Float, nullable=True))
        batch.add_column(sa.Column("latest_is_nan", sa.Boolean, nullable=True))
    op.create_index("ix_metric_summaries_latest", "metric_summaries", ["name", "latest_value", "run_id"])
    _backfill_latest()
    op.create_table(
        "mlflow_logged_models",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("experiment_id", sa.String(64), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source_run_id", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_type", sa.String(255), nullable=True),
        sa.Column("artifact_location", sa.Text, nullable=False),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("last_updated_time", sa.Float, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_mlflow_logged_models_experiment", "mlflow_logged_models", ["experiment_id", "created_time"]
    )
    op.create_index("ix_mlflow_logged_models_run", "mlflow_logged_models", ["source_run_id"])


def _backfill_latest() -> None:
    """Each existing summary's MLflow latest value, as append_metrics now keeps it: the scalar row with the
    highest (step, timestamp, value), a missing step counting as 0, the first stored on a tie. One
    statement; the subquery reads each series through ix_metrics_run_name. Written against the tables as
    they are at this revision (no NaN rows exist yet, so latest_is_nan stays NULL)."""
    op.execute(
        sa.text(
            """
            UPDATE metric_summaries SET (latest_value, latest_step, latest_timestamp) = (
                SELECT m.value, COALESCE(m.step, 0), m.timestamp FROM metrics m
                WHERE m.run_id = metric_summaries.run_id AND m.name = metric_summaries.name
                  AND m.kind = 'scalar' AND m.value IS NOT NULL
                ORDER BY COALESCE(m.step, 0) DESC, m.timestamp DESC, m.value DESC, m.id ASC
                LIMIT 1
            )
            """
        )
    )


def downgrade() -> None:
    op.drop_table("mlflow_logged_models")
    op.drop_index("ix_metric_summaries_latest", table_name="metric_summaries")
    with op.batch_alter_table("metric_summaries") as batch:
        for name in ("latest_is_nan", "latest_timestamp", "latest_step", "latest_value"):
            batch.drop_column(name)
    op.drop_column("metrics", "is_nan")
    op.drop_index("ix_runs_experiment_start", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_time")
        batch.drop_column("lifecycle_stage")
    op.drop_table("experiment_tags")
    with op.batch_alter_table("experiments") as batch:
        for name in ("last_update_time", "artifact_location", "lifecycle_stage"):
            batch.drop_column(name)
