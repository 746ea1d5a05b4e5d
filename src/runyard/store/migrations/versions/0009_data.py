"""Datastores, versioned datasets, lineage (dataset uses) and workspace settings (the default datastore).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datastores",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("secret_names", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(256), nullable=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("uq_datasets_name_version", "datasets", ["name", "version"], unique=True)
    op.create_table(
        "dataset_uses",
        sa.Column("run_id", sa.String(256), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("direction", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.id"), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_dataset_uses_dataset", "dataset_uses", ["dataset_id", "created_time"])
    op.create_index("ix_dataset_uses_created", "dataset_uses", ["created_time"])
    op.create_table(
        "workspace_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workspace_settings")
    op.drop_index("ix_dataset_uses_created", table_name="dataset_uses")
    op.drop_index("ix_dataset_uses_dataset", table_name="dataset_uses")
    op.drop_table("dataset_uses")
    op.drop_index("uq_datasets_name_version", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("datastores")
