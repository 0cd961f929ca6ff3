"""A task's price on each provider it may run on (one model, several homes, several prices):
written with the pre-charge, read when the task is settled on its serving provider's price.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_prices",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("unit", sa.String(24), nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_prices")
