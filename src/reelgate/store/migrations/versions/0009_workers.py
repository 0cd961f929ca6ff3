"""Worker heartbeats (readiness checks that some worker is alive), and each task's request id
(its log lines and webhooks carry the id of the request that created it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=False, server_default=""))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("request_id")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("request_id")
    op.drop_table("workers")
