"""Registered environments: v1's environment JSON, one immutable row per (name, version).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_index("uq_environments_name_version", "environments", ["name", "version"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_environments_name_version", table_name="environments")
    op.drop_table("environments")
