"""Named compute targets: AmlCompute / ComputeInstance records, each run on local slots.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_targets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("vm_size", sa.String(255), nullable=False),
        sa.Column("min_nodes", sa.Integer, nullable=False),
        sa.Column("max_nodes", sa.Integer, nullable=False),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compute_targets")
