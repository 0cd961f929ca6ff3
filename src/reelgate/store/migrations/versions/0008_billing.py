"""Billing: an append-only ledger per token (grants, pre-charges, settlements, refunds) and the
flag that makes a token's quota enforced.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CLOSING = "kind IN ('settle', 'refund')"


def upgrade() -> None:
    # A plain ADD COLUMN (a constant default): a batch copy of api_tokens would break the
    # foreign keys of tasks pointing at it on SQLite.
    op.add_column(
        "api_tokens",
        sa.Column("quota_limited", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("owner_id", sa.String(40), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("unit", sa.String(24), nullable=True),
        sa.Column("unit_price", sa.BigInteger, nullable=True),
        sa.Column("quantity", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_ledger_owner", "ledger", ["owner_id", "amount"])
    op.create_index("ix_ledger_owner_id", "ledger", ["owner_id", "id"])
    op.create_index("uq_ledger_task_kind", "ledger", ["task_id", "kind"], unique=True)
    op.create_index(
        "uq_ledger_task_closed",
        "ledger",
        ["task_id"],
        unique=True,
        sqlite_where=sa.text(_CLOSING),
        postgresql_where=sa.text(_CLOSING),
    )


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_column("api_tokens", "quota_limited")
