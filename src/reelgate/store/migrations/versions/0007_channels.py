"""Channels: upstream accounts kept in the database (keys encrypted), with health and failover.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("api_key_enc", sa.Text, nullable=True),
        sa.Column("region", sa.String(32), nullable=False, server_default=""),
        sa.Column("base_url", sa.Text, nullable=False, server_default=""),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("max_queued", sa.Integer, nullable=True),
        sa.Column("max_in_flight", sa.Integer, nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_by", sa.String(8), nullable=False, server_default=""),
        sa.Column("disabled_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("cooldown_until", sa.Float, nullable=True),
        sa.Column("next_probe_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("tried_channels", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("tried_channels")
    op.drop_table("channels")
