"""The distributed engine: accounts, deadlines, submission markers, idempotency keys,
model statistics and shared rate buckets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NON_TERMINAL = sa.text("status IN ('queued', 'in_progress')")
_UNSUBMITTED = sa.text("status = 'queued' AND upstream_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("account", sa.String(64), nullable=True))
        batch.add_column(sa.Column("deadline_at", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("submitted_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("submit_started_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("created_at", sa.Float, nullable=False, server_default="0"))
    op.execute("UPDATE tasks SET created_at = submit_time")
    # Tasks in flight from before this revision get the default deadline (72 h after create).
    op.execute(
        "UPDATE tasks SET deadline_at = submit_time + 259200 "
        "WHERE status IN ('queued', 'in_progress')"
    )
    op.create_index("ix_tasks_owner_created", "tasks", ["owner_id", "created_at", "id"])
    op.create_index(
        "ix_tasks_admission",
        "tasks",
        ["provider", "created_at"],
        sqlite_where=_UNSUBMITTED,
        postgresql_where=_UNSUBMITTED,
    )
    op.create_index(
        "ix_tasks_in_flight",
        "tasks",
        ["provider", "account", "status"],
        sqlite_where=_NON_TERMINAL,
        postgresql_where=_NON_TERMINAL,
    )
    op.create_index(
        "ix_tasks_deadline",
        "tasks",
        ["deadline_at"],
        sqlite_where=_NON_TERMINAL,
        postgresql_where=_NON_TERMINAL,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "model_stats",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("typical_seconds", sa.Float, nullable=False),
        sa.Column("samples", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_table("model_stats")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_tasks_deadline", "tasks")
    op.drop_index("ix_tasks_in_flight", "tasks")
    op.drop_index("ix_tasks_admission", "tasks")
    op.drop_index("ix_tasks_owner_created", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("created_at")
        batch.drop_column("submit_started_at")
        batch.drop_column("submitted_at")
        batch.drop_column("deadline_at")
        batch.drop_column("account")
