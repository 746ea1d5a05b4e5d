"""Publishing: published pipelines, pipeline endpoints and schedules.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_pipelines",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("version", sa.String(255), nullable=True),
        sa.Column("continue_on_step_failure", sa.Boolean, nullable=False),
        sa.Column("graph", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_published_pipelines_created", "published_pipelines", ["created_time"])
    op.create_table(
        "pipeline_endpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("default_version", sa.String(32), nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("uq_pipeline_endpoints_name", "pipeline_endpoints", ["name"], unique=True)
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("experiment_name", sa.String(255), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("pipeline_id", sa.String(64), sa.ForeignKey("published_pipelines.id"), nullable=True),
        sa.Column(
            "pipeline_endpoint_id", sa.String(64), sa.ForeignKey("pipeline_endpoints.id"), nullable=True
        ),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("recurrence", sa.JSON, nullable=True),
        sa.Column("datastore_name", sa.String(255), nullable=True),
        sa.Column("path_on_datastore", sa.Text, nullable=True),
        sa.Column("polling_interval", sa.Float, nullable=True),
        sa.Column("data_path_parameter_name", sa.String(255), nullable=True),
        sa.Column("continue_on_step_failure", sa.Boolean, nullable=True),
        sa.Column("pipeline_parameters", sa.JSON, nullable=False),
        sa.Column("next_fire_time", sa.Float, nullable=True),
        sa.Column("last_fire_time", sa.Float, nullable=True),
        sa.Column("last_run_id", sa.String(256), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_schedules_status_next", "schedules", ["status", "next_fire_time"])
    op.create_index("ix_schedules_pipeline", "schedules", ["pipeline_id"])
    op.create_index("ix_schedules_endpoint", "schedules", ["pipeline_endpoint_id"])
    op.create_index("ix_schedules_created", "schedules", ["created_time"])


def downgrade() -> None:
    op.drop_table("schedules")  # its indexes go with it
    op.drop_index("uq_pipeline_endpoints_name", table_name="pipeline_endpoints")
    op.drop_table("pipeline_endpoints")
    op.drop_index("ix_published_pipelines_created", table_name="published_pipelines")
    op.drop_table("published_pipelines")
