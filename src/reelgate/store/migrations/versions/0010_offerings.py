"""Offerings: a channel's provider options, and which providers' offerings can honour a task.

``channels.options`` holds the provider's own options of a channel (validated by its
declaration). ``tasks.offering_providers`` lists (",ark,fal,") the providers whose offering of the
task's model can honour its request: admission routes it only to their channels (the admission
and in-flight indexes follow: by model, and by channel). The sandbox's
built-in channel is named ``sandbox`` (it was ``default``, the name of Ark's default channel).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_UNSUBMITTED = sa.text("status = 'queued' AND upstream_id IS NULL")
_NON_TERMINAL = sa.text("status IN ('queued', 'in_progress')")

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("options", sa.JSON, nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("offering_providers", sa.Text, nullable=False, server_default="")
        )
    op.execute("UPDATE tasks SET account = 'sandbox' WHERE provider = 'sandbox'")
    # Admission now takes a model's waiting tasks for a channel of any provider that offers it,
    # and counts a channel's tasks in flight by its (unique) name.
    _indexes(admission=["model", "created_at"], in_flight=["account", "status"])


def _indexes(*, admission: list[str], in_flight: list[str]) -> None:
    op.drop_index("ix_tasks_admission", table_name="tasks")
    op.drop_index("ix_tasks_in_flight", table_name="tasks")
    op.create_index(
        "ix_tasks_admission",
        "tasks",
        admission,
        sqlite_where=_UNSUBMITTED,
        postgresql_where=_UNSUBMITTED,
    )
    op.create_index(
        "ix_tasks_in_flight",
        "tasks",
        in_flight,
        sqlite_where=_NON_TERMINAL,
        postgresql_where=_NON_TERMINAL,
    )


def downgrade() -> None:
    _indexes(admission=["provider", "created_at"], in_flight=["provider", "account", "status"])
    op.execute("UPDATE tasks SET account = 'default' WHERE provider = 'sandbox'")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("offering_providers")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("options")
