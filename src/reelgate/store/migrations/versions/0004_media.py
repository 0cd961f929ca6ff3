"""Durable media: copies of results in reelgate's storage, with a retention period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("media_state", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("video_ref", sa.Text, nullable=True))
        batch.add_column(sa.Column("last_frame_ref", sa.Text, nullable=True))
    op.create_table(
        "media_copies",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("variant", sa.String(16), primary_key=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("stored_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_media_copies_due",
        "media_copies",
        ["next_attempt_at"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_media_copies_expiry",
        "media_copies",
        ["expires_at"],
        sqlite_where=sa.text("state = 'stored'"),
        postgresql_where=sa.text("state = 'stored'"),
    )


def downgrade() -> None:
    op.drop_table("media_copies")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("last_frame_ref")
        batch.drop_column("video_ref")
        batch.drop_column("media_state")
