"""Webhooks in SQL: token endpoints and secrets, the outbox (written with the task's end), leased
claims of due deliveries, and the attempt log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.core.crypto import SecretBox
from reelgate.core.errors import ConfigError
from reelgate.core.ids import new_id
from reelgate.core.lifecycle import Task
from reelgate.core.webhooks import Attempt, Delivery, Endpoint
from reelgate.store.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from reelgate.store.sql_base import SqlBase

# A secret sealed with REELGATE_ENCRYPTION_KEY; one without the prefix was stored in clear.
SEALED = "sealed:"


def _open(box: SecretBox | None, value: str | None) -> str | None:
    if value is None or not value.startswith(SEALED):
        return value
    if box is None:
        raise ConfigError(
            "webhook secrets are stored encrypted: set REELGATE_ENCRYPTION_KEY to the key they "
            "were stored with"
        )
    return box.open(value.removeprefix(SEALED))


def _endpoint(m: RowMapping, box: SecretBox | None) -> Endpoint:
    secret = _open(box, m["secret"])
    assert secret is not None
    return Endpoint(
        owner_id=m["owner_id"],
        url=m["url"],
        secret=secret,
        previous_secret=_open(box, m["previous_secret"]),
        previous_until=m["previous_until"],
        disabled_at=m["disabled_at"],
        disabled_reason=m["disabled_reason"],
    )


def _delivery(m: RowMapping, log: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        id=m["id"],
        owner_id=m["owner_id"],
        task_id=m["task_id"],
        target=m["target"],
        url=m["url"],
        event=m["event"],
        state=m["state"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
        payload=m["payload"],
        last_status=m["last_status"],
        last_error=m["last_error"],
        log=tuple(log),
        request_id=m["request_id"],
    )


async def enqueue_webhooks(conn: AsyncConnection, task: Task, event: str, now: float) -> int:
    """Outbox rows for a task's end: its own callback_url and its token's enabled endpoint.

    Runs inside the transaction that saves the task's end, so an ended task always has its
    deliveries and a rolled-back end has none."""
    endpoint = (
        await conn.execute(
            sa.select(webhook_endpoints.c.url, webhook_endpoints.c.disabled_at).where(
                webhook_endpoints.c.owner_id == task.owner_id
            )
        )
    ).first()
    targets: list[tuple[str, str]] = []
    if task.callback_url:
        targets.append(("task", task.callback_url))
    if (
        endpoint is not None
        and endpoint.url
        and endpoint.disabled_at is None
        and endpoint.url != task.callback_url
    ):
        targets.append(("endpoint", endpoint.url))
    for target, url in targets:
        await conn.execute(
            webhook_deliveries.insert().values(
                id=new_id("msg_"),
                owner_id=task.owner_id,
                task_id=task.id,
                target=target,
                url=url,
                event=event,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                request_id=task.request_id,
            )
        )
    return len(targets)


class WebhookQueries(SqlBase):
    # Seals webhook signing secrets at rest when REELGATE_ENCRYPTION_KEY is set.
    secret_box: SecretBox | None = None

    def _seal(self, secret: str | None) -> str | None:
        if secret is None or self.secret_box is None:
            return secret
        return SEALED + self.secret_box.seal(secret)

    async def webhook_endpoint(self, owner_id: str) -> Endpoint | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(webhook_endpoints).where(webhook_endpoints.c.owner_id == owner_id)
                )
            ).first()
        return _endpoint(row._mapping, self.secret_box) if row else None

    async def ensure_webhook_endpoint(self, owner_id: str, secret: str, now: float) -> Endpoint:
        """The token's endpoint record, created (no URL, with ``secret``) if it has none."""
        async with self._tx() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        webhook_endpoints.insert().values(
                            owner_id=owner_id, url=None, secret=self._seal(secret), updated_at=now
                        )
                    )
            except sa.exc.IntegrityError:
                pass  # it exists (maybe created concurrently): read it below
            row = (
                await conn.execute(
                    sa.select(webhook_endpoints).where(webhook_endpoints.c.owner_id == owner_id)
                )
            ).one()
        return _endpoint(row._mapping, self.secret_box)

    async def update_webhook_endpoint(self, owner_id: str, now: float, **values: Any) -> None:
        for key in ("secret", "previous_secret"):
            if key in values:
                values[key] = self._seal(values[key])
        async with self._tx() as conn:
            await conn.execute(
                webhook_endpoints.update()
                .where(webhook_endpoints.c.owner_id == owner_id)
                .values(updated_at=now, **values)
            )

    async def claim_deliveries(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> list[Delivery]:
        due = (
            sa.select(webhook_deliveries)
            .where(
                webhook_deliveries.c.state == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
                sa.or_(
                    webhook_deliveries.c.lease_until.is_(None),
                    webhook_deliveries.c.lease_until < now,
                ),
            )
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._tx() as conn:
            rows = (await conn.execute(due)).all()
            if rows:
                await conn.execute(
                    webhook_deliveries.update()
                    .where(webhook_deliveries.c.id.in_([r.id for r in rows]))
                    .values(lease_owner=worker, lease_until=now + lease_seconds)
                )
        return [_delivery(r._mapping) for r in rows]

    async def record_attempt(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        state: str,
        next_attempt_at: float,
        payload: str | None,
    ) -> None:
        """Log one attempt and move the delivery on (released from its lease)."""
        async with self._tx() as conn:
            await conn.execute(
                webhook_attempts.insert().values(
                    delivery_id=delivery.id,
                    attempt=attempt.attempt,
                    at=attempt.at,
                    status=attempt.status,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
            )
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    state=state,
                    attempts=attempt.attempt,
                    next_attempt_at=next_attempt_at,
                    payload=payload,
                    last_status=attempt.status,
                    last_error=attempt.error,
                    updated_at=attempt.at,
                    lease_owner=None,
                    lease_until=None,
                )
            )

    async def settle_delivery(self, delivery_id: str, state: str, reason: str, now: float) -> None:
        """End a delivery without an attempt (its endpoint was disabled meanwhile)."""
        async with self._tx() as conn:
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    state=state,
                    last_error=reason,
                    updated_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )

    async def task_deliveries(self, owner_id: str, task_id: str) -> list[Delivery]:
        """A task's deliveries, oldest first, each with its attempt log."""
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    sa.select(webhook_deliveries)
                    .where(
                        webhook_deliveries.c.owner_id == owner_id,
                        webhook_deliveries.c.task_id == task_id,
                    )
                    .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
                )
            ).all()
            ids = [r.id for r in rows]
            attempts: dict[str, list[Attempt]] = {i: [] for i in ids}
            if ids:
                for a in await conn.execute(
                    sa.select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id.in_(ids))
                    .order_by(webhook_attempts.c.id)
                ):
                    attempts[a.delivery_id].append(
                        Attempt(a.attempt, a.at, a.status, a.error, a.duration_ms)
                    )
        return [_delivery(r._mapping, attempts[r.id]) for r in rows]

    async def replay_delivery(
        self, owner_id: str, task_id: str, delivery_id: str, now: float
    ) -> bool:
        """Send a delivery again (same webhook-id and body) as soon as possible."""
        async with self._tx() as conn:
            result = await conn.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.owner_id == owner_id,
                    webhook_deliveries.c.task_id == task_id,
                )
                .values(state="pending", next_attempt_at=now, updated_at=now)
            )
            return bool(result.rowcount)
