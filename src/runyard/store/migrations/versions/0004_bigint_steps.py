"""Metric steps and writer sequence numbers are 64-bit, as MLflow's steps are.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("step", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=True)
        batch.alter_column("seq", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=True)
    with op.batch_alter_table("metric_summaries") as batch:
        batch.alter_column("last_step", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("metric_summaries") as batch:
        batch.alter_column("last_step", type_=sa.Integer, existing_type=sa.BigInteger, existing_nullable=True)
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("seq", type_=sa.Integer, existing_type=sa.BigInteger, existing_nullable=True)
        batch.alter_column("step", type_=sa.Integer, existing_type=sa.BigInteger, existing_nullable=True)
