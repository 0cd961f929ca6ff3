"""The tables, as SQLAlchemy Core metadata. Migrations create them; queries are built from these."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

NON_TERMINAL = ("queued", "in_progress")

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("models", sa.JSON, nullable=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("max_concurrent", sa.Integer, nullable=True),
    # A quota is set: creates are refused when the balance (the sum of the ledger) is short.
    sa.Column("quota_limited", sa.Boolean, nullable=False, server_default=sa.false()),
)

tasks = sa.Table(
    "tasks",
    metadata,
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
    sa.Column("usage_seconds", sa.Float, nullable=True),
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
    # The channel that serves the task (chosen at admission, then kept).
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("deadline_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("submitted_at", sa.Float, nullable=True),
    sa.Column("submit_started_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("callback_url", sa.Text, nullable=True),
    # A callback arrived while a look was in flight: that look's reschedule must not delay it.
    sa.Column("nudged", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("media_state", sa.String(16), nullable=False, server_default=""),
    sa.Column("video_ref", sa.Text, nullable=True),
    sa.Column("last_frame_ref", sa.Text, nullable=True),
    sa.Column("deleted_at", sa.Float, nullable=True),
    # Channels a submit failed on for a reason of the channel's own (failover skips them): ",a,b,".
    sa.Column("tried_channels", sa.Text, nullable=False, server_default=""),
    # The providers whose offering of the model can honour the request (",ark,fal,"; "": any).
    sa.Column("offering_providers", sa.Text, nullable=False, server_default=""),
    # The request that created the task (logs and webhooks carry it).
    sa.Column("request_id", sa.String(128), nullable=False, server_default=""),
    # The worker's hot query: due, non-terminal tasks in poll order.
    sa.Index(
        "ix_tasks_due",
        "next_poll_at",
        sqlite_where=sa.text("status IN ('queued', 'in_progress')"),
        postgresql_where=sa.text("status IN ('queued', 'in_progress')"),
    ),
    # The admission queue: tasks not yet submitted, per model, oldest first.
    sa.Index(
        "ix_tasks_admission",
        "model",
        "created_at",
        sqlite_where=sa.text("status = 'queued' AND upstream_id IS NULL"),
        postgresql_where=sa.text("status = 'queued' AND upstream_id IS NULL"),
    ),
    # Admission caps count a channel's tasks in flight upstream.
    sa.Index(
        "ix_tasks_in_flight",
        "channel",
        "status",
        sqlite_where=sa.text("status IN ('queued', 'in_progress')"),
        postgresql_where=sa.text("status IN ('queued', 'in_progress')"),
    ),
    # The sweeper: non-terminal tasks past their deadline.
    sa.Index(
        "ix_tasks_deadline",
        "deadline_at",
        sqlite_where=sa.text("status IN ('queued', 'in_progress')"),
        postgresql_where=sa.text("status IN ('queued', 'in_progress')"),
    ),
    # A token's own tasks, newest first (lists, quotas).
    sa.Index("ix_tasks_owner_submit", "owner_id", "submit_time"),
    sa.Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
    # Upstream callbacks and reconciliation find a task by its upstream id.
    sa.Index("ix_tasks_upstream", "provider", "upstream_id"),
)

# Channels (credentials for one provider): those from settings (source "config", key in
# settings) and those added at run time (source "admin", key encrypted with
# REELGATE_ENCRYPTION_KEY), with their health.
channels = sa.Table(
    "channels",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),  # config | admin
    sa.Column("api_key_enc", sa.Text, nullable=True),
    sa.Column("region", sa.String(32), nullable=False, server_default=""),
    sa.Column("base_url", sa.Text, nullable=False, server_default=""),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("weight", sa.Integer, nullable=False, server_default="1"),
    sa.Column("models", sa.JSON, nullable=True),  # None: every model of the provider
    sa.Column("options", sa.JSON, nullable=True),  # the provider's own options (None: none)
    sa.Column("max_queued", sa.Integer, nullable=True),
    sa.Column("max_in_flight", sa.Integer, nullable=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled_by", sa.String(8), nullable=False, server_default=""),  # admin | health
    sa.Column("disabled_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("cooldown_until", sa.Float, nullable=True),
    sa.Column("next_probe_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Every movement of a token's money, append-only: a balance is the sum of its token's rows.
# Amounts are signed integers in the operator's currency unit (grants positive, charges negative).
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("owner_id", sa.String(40), sa.ForeignKey("api_tokens.id"), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=True),  # None for grants and adjustments
    sa.Column("kind", sa.String(16), nullable=False),  # grant|adjust|precharge|settle|refund
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    # The price a task was charged at, and the quantity (estimated or used tokens, seconds, 1).
    sa.Column("unit", sa.String(24), nullable=True),
    sa.Column("unit_price", sa.BigInteger, nullable=True),
    sa.Column("quantity", sa.BigInteger, nullable=True),
    # Balances (and the pre-charge check on create) sum a token's rows from this index alone.
    sa.Index("ix_ledger_owner", "owner_id", "amount"),
    sa.Index("ix_ledger_owner_id", "owner_id", "id"),
    # Exactly once: one pre-charge per task, and one closing entry (settle or refund).
    sa.Index("uq_ledger_task_kind", "task_id", "kind", unique=True),
    sa.Index(
        "uq_ledger_task_closed",
        "task_id",
        unique=True,
        sqlite_where=sa.text("kind IN ('settle', 'refund')"),
        postgresql_where=sa.text("kind IN ('settle', 'refund')"),
    ),
)

# A pre-charged task's price on each provider it may run on, when the model's price depends on
# the provider: written with the pre-charge (the most expensive of them), read when the task
# closes, to settle it on the price of the provider that served it.
task_prices = sa.Table(
    "task_prices",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("unit", sa.String(24), nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
)

# Idempotency-Key on create: (token, key) → the task it made, with a fingerprint of the body.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("owner_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# What the schedule learns: the typical duration of each model's tasks.
model_stats = sa.Table(
    "model_stats",
    metadata,
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("typical_seconds", sa.Float, nullable=False),
    sa.Column("samples", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Token buckets shared by every worker (e.g. a channel's requests per minute).
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Webhooks reelgate sends: each token's endpoint and signing secrets (two during a rotation).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("owner_id", sa.String(40), sa.ForeignKey("api_tokens.id"), primary_key=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_until", sa.Float, nullable=True),
    sa.Column("disabled_at", sa.Float, nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# The outbox: one row per (event, target), written in the transaction that ends the task.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),  # "task" | "endpoint"
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=True),  # rendered at the first attempt
    sa.Column("state", sa.String(16), nullable=False),  # pending|delivered|failed|disabled
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("request_id", sa.String(128), nullable=False, server_default=""),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
    sa.Index("ix_webhook_deliveries_task", "owner_id", "task_id"),
)

# Every attempt of every delivery (the delivery log).
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)

# Durable copies of results: one row per (task, variant), written with the task's success.
media_copies = sa.Table(
    "media_copies",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("variant", sa.String(16), primary_key=True),  # video | last_frame
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("source_url", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | stored | failed | expired
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("name", sa.Text, nullable=True),  # the file under the media directory
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("stored_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Index(
        "ix_media_copies_due",
        "next_attempt_at",
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
    sa.Index(
        "ix_media_copies_expiry",
        "expires_at",
        sqlite_where=sa.text("state = 'stored'"),
        postgresql_where=sa.text("state = 'stored'"),
    ),
)

# Worker heartbeats (readiness: is any worker alive?).
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)
