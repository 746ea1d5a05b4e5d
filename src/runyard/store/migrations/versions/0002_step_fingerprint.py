"""Pipeline steps: a fingerprint column for reuse lookups, and an index to find a step's latest run.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
    op.create_index("ix_runs_fingerprint", "runs", ["fingerprint"])
    op.create_index("ix_runs_type_name", "runs", ["run_type", "display_name"])


def downgrade() -> None:
    op.drop_index("ix_runs_type_name", "runs")
    op.drop_index("ix_runs_fingerprint", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("fingerprint")
