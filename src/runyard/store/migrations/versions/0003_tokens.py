"""Tokens for the tracking server: workspace tokens with scopes and per-run tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(256), nullable=True),
        sa.Column("created_time", sa.Float, nullable=False),
        sa.Column("expires_time", sa.Float, nullable=True),
        sa.Column("revoked_time", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tokens")
