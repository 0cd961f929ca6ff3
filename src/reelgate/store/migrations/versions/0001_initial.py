"""Initial schema: meta, api_tokens, tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NON_TERMINAL = sa.text("status IN ('queued', 'in_progress')")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_tokens_prefix", "api_tokens", ["prefix"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("upstream_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_url", sa.Text, nullable=False, server_default=""),
        sa.Column("last_frame_url", sa.Text, nullable=False, server_default=""),
        sa.Column("error_code", sa.String(128), nullable=False, server_default=""),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("usage_tokens", sa.BigInteger, nullable=True),
        sa.Column("submit_time", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("finish_time", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("next_poll_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("poll_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("submit_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("missing_looks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index(
        "ix_tasks_due",
        "tasks",
        ["next_poll_at"],
        sqlite_where=_NON_TERMINAL,
        postgresql_where=_NON_TERMINAL,
    )
    op.create_index("ix_tasks_owner_submit", "tasks", ["owner_id", "submit_time"])
    op.create_index("ix_tasks_upstream", "tasks", ["provider", "upstream_id"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("api_tokens")
    op.drop_table("meta")
