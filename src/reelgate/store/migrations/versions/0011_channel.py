"""One name per concept: a task's ``account`` column is its ``channel``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_NON_TERMINAL = sa.text("status IN ('queued', 'in_progress')")

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _rename(old: str, new: str) -> None:
    op.drop_index("ix_tasks_in_flight", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column(old, new_column_name=new)
    op.create_index(
        "ix_tasks_in_flight",
        "tasks",
        [new, "status"],
        sqlite_where=_NON_TERMINAL,
        postgresql_where=_NON_TERMINAL,
    )


def upgrade() -> None:
    _rename("account", "channel")


def downgrade() -> None:
    _rename("channel", "account")
