"""Task rows: insert (with idempotency keys), look-ups by (owner, id), optimistic saves, nudges."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.core.errors import Conflict, RateLimited
from reelgate.core.lifecycle import Task
from reelgate.core.pricing import Charge
from reelgate.store.schema import NON_TERMINAL, idempotency_keys, ledger, tasks
from reelgate.store.sql_base import (
    _TASK_COLS,
    TASK_CHANNEL,
    SqlBase,
    StoreError,
    _row_to_task,
    _task_values,
)
from reelgate.store.sql_ledger import lock_owner, precharge, settle_task
from reelgate.store.sql_media import enqueue_copies
from reelgate.store.sql_webhooks import enqueue_webhooks


class TaskRows(SqlBase):
    async def _room_for(self, conn: AsyncConnection, owner_id: str, limit: int | None) -> None:
        """Refuse a new task when its token already has ``limit`` unfinished ones (the count
        and the insert are one step: a per-token advisory lock on PostgreSQL, and SQLite's
        single writer)."""
        if limit is None:
            return
        await lock_owner(conn, owner_id)
        active = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    tasks.c.owner_id == owner_id, tasks.c.status.in_(NON_TERMINAL)
                )
            )
        ).scalar_one()
        if int(active) >= limit:
            raise RateLimited(
                f"this token already has {limit} unfinished tasks, its limit; "
                "try again when one ends",
                code="too_many_tasks",
                retry_after=5.0,
            )

    async def _insert(
        self, conn: AsyncConnection, task: Task, max_active: int | None, charge: Charge | None
    ) -> None:
        """Count, pre-charge and insert as one step: a refusal leaves no task and no charge."""
        await self._room_for(conn, task.owner_id, max_active)
        if charge is not None:
            await lock_owner(conn, task.owner_id)  # taken again is fine: held until commit
            await precharge(conn, task, charge)
        await conn.execute(tasks.insert().values(**_task_values(task)))
        await self._notify_work(conn)

    async def insert_task(
        self, task: Task, *, max_active: int | None = None, charge: Charge | None = None
    ) -> None:
        async with self._tx() as conn:
            await self._insert(conn, task, max_active, charge)

    async def create_task(
        self,
        task: Task,
        key: str,
        fingerprint: str,
        since: float,
        *,
        max_active: int | None = None,
        charge: Charge | None = None,
    ) -> tuple[Task, bool]:
        """Insert ``task`` under an idempotency key, or return the task the key already made.

        Returns ``(task, created)``. A key older than ``since`` is forgotten and reused. Raises
        ``Conflict`` (``idempotency_key_reused``) when the key was used for another body.
        """
        for _ in range(3):
            async with self._tx() as conn:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            idempotency_keys.insert().values(
                                owner_id=task.owner_id,
                                key=key,
                                fingerprint=fingerprint,
                                task_id=task.id,
                                created_at=task.submit_time,
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # the key exists (maybe a concurrent duplicate): read it below
                else:
                    await self._insert(conn, task, max_active, charge)
                    return task, True
                found = (
                    await conn.execute(
                        sa.select(idempotency_keys).where(
                            idempotency_keys.c.owner_id == task.owner_id,
                            idempotency_keys.c.key == key,
                        )
                    )
                ).first()
                if found is None:
                    continue  # forgotten meanwhile: try again
                if found.created_at < since:
                    await conn.execute(
                        idempotency_keys.delete().where(
                            idempotency_keys.c.owner_id == task.owner_id,
                            idempotency_keys.c.key == key,
                            idempotency_keys.c.created_at == found.created_at,
                        )
                    )
                    continue
                if found.fingerprint != fingerprint:
                    raise Conflict(
                        "this Idempotency-Key was already used with a different request body",
                        code="idempotency_key_reused",
                    )
                row = (
                    await conn.execute(
                        self._get_task, {"task_id": found.task_id, "owner_id": task.owner_id}
                    )
                ).first()
                if row is not None:
                    return _row_to_task(row._mapping), False
        raise StoreError("could not settle the Idempotency-Key; retry the request")

    async def get_task(self, owner_id: str, task_id: str) -> Task | None:
        async with self._read() as conn:
            row = (
                await conn.execute(self._get_task, {"task_id": task_id, "owner_id": owner_id})
            ).first()
        if row is None or row._mapping["deleted_at"] is not None:
            return None  # a deleted task is unknown to its owner
        return _row_to_task(row._mapping)

    async def find_task(self, task_id: str) -> Task | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(*_TASK_COLS).where(tasks.c.id == task_id))).first()
        return _row_to_task(row._mapping) if row else None

    async def save_task(
        self,
        task: Task,
        expected_version: int,
        *,
        notify: bool = False,
        unleased_at: float | None = None,
        webhook: tuple[str, float] | None = None,
        mirror_at: float | None = None,
        settle_at: float | None = None,
    ) -> bool:
        values = _task_values(task)
        del values["id"], values["owner_id"]
        where: list[sa.ColumnElement[bool]] = [
            tasks.c.id == task.id,
            tasks.c.version == expected_version,
        ]
        if unleased_at is not None:
            where.append(sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < unleased_at))
        # A callback that came in while this task was being looked at moved its next look
        # forward (and marked it): keep the earlier of the two.
        values["next_poll_at"] = sa.case(
            (
                sa.and_(tasks.c.nudged, tasks.c.next_poll_at < task.next_poll_at),
                tasks.c.next_poll_at,
            ),
            else_=task.next_poll_at,
        )
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(*where)
                .values(**values, lease_owner=None, lease_until=None, nudged=False)
            )
            if result.rowcount and webhook is not None:
                await enqueue_webhooks(conn, task, *webhook)
            if result.rowcount and mirror_at is not None:
                await enqueue_copies(conn, task, mirror_at)
            if result.rowcount and settle_at is not None:
                await settle_task(conn, task, settle_at)
            if result.rowcount and notify and self.dialect == "postgresql":
                # Delivered at commit to every process listening (API replicas, workers).
                await conn.execute(
                    sa.text("SELECT pg_notify(:channel, :payload)"),
                    {
                        "channel": TASK_CHANNEL,
                        "payload": f"{task.owner_id} {task.id} {task.version}",
                    },
                )
            return bool(result.rowcount)

    async def nudge(self, task_id: str, at: float) -> bool:
        """Bring a submitted, unfinished task's next look forward to ``at`` (never later), and
        mark it, so that a look already in flight cannot push it back when it saves."""
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status.in_(NON_TERMINAL),
                    tasks.c.upstream_id.is_not(None),
                    sa.or_(tasks.c.next_poll_at > at, sa.not_(tasks.c.nudged)),
                )
                .values(
                    next_poll_at=sa.case(
                        (tasks.c.next_poll_at > at, at), else_=tasks.c.next_poll_at
                    ),
                    nudged=True,
                )
            )
            if result.rowcount:
                await self._notify_work(conn)
            return bool(result.rowcount)

    async def list_tasks(
        self,
        owner_id: str,
        *,
        limit: int,
        status: str | None = None,
        model: str | None = None,
        before: tuple[float, str] | None = None,
        oldest_first: bool = False,
    ) -> list[Task]:
        """A token's tasks, newest first (or oldest first); ``before`` (created at, id) is where
        the previous page ended."""
        query = sa.select(*_TASK_COLS).where(
            tasks.c.owner_id == owner_id, tasks.c.deleted_at.is_(None)
        )
        if status is not None:
            query = query.where(tasks.c.status == status)
        if model is not None:
            query = query.where(tasks.c.model == model)
        if before is not None and not oldest_first:
            query = query.where(
                sa.or_(
                    tasks.c.created_at < before[0],
                    sa.and_(tasks.c.created_at == before[0], tasks.c.id < before[1]),
                )
            )
        elif before is not None:
            query = query.where(
                sa.or_(
                    tasks.c.created_at > before[0],
                    sa.and_(tasks.c.created_at == before[0], tasks.c.id > before[1]),
                )
            )
        order = (
            (tasks.c.created_at.asc(), tasks.c.id.asc())
            if oldest_first
            else (tasks.c.created_at.desc(), tasks.c.id.desc())
        )
        query = query.order_by(*order).limit(limit)
        async with self._read() as conn:
            return [_row_to_task(r._mapping) for r in await conn.execute(query)]

    async def usage(
        self, owner_id: str | None, since: int, until: int, group_by: str
    ) -> list[dict[str, Any]]:
        """A token's tasks (every token's with ``None``) created in [since, until), counted per
        model, day or token, with what they cost from the ledger: ``charged`` (net, including
        what unfinished tasks hold) and ``pending`` (held by unfinished tasks)."""
        key: sa.ColumnElement[Any]
        if group_by == "model":
            key = tasks.c.model
        elif group_by == "day":
            key = tasks.c.submit_time - tasks.c.submit_time % 86400
        else:
            key = tasks.c.owner_id
        # What each task took, net (pre-charge, settlement, refund), by the task-id index.
        net = (
            sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
            .where(ledger.c.task_id == tasks.c.id)
            .scalar_subquery()
        )
        rows = (
            sa.select(
                key.label("key"),
                tasks.c.status,
                tasks.c.error_code,
                tasks.c.usage_tokens,
                (-net).label("cost"),
            )
            .where(
                tasks.c.owner_id == owner_id if owner_id is not None else sa.true(),
                tasks.c.submit_time >= since,
                tasks.c.submit_time < until,
            )
            .subquery()
        )
        unfinished = rows.c.status.in_(NON_TERMINAL)
        query = (
            sa.select(
                rows.c.key,
                sa.func.count().label("tasks"),
                sa.func.sum(sa.case((rows.c.status == "success", 1), else_=0)).label("succeeded"),
                sa.func.sum(sa.case((rows.c.status == "failure", 1), else_=0)).label("failed"),
                sa.func.sum(sa.case((rows.c.error_code == "cancelled", 1), else_=0)).label(
                    "cancelled"
                ),
                sa.func.sum(sa.case((unfinished, 1), else_=0)).label("unfinished"),
                sa.func.coalesce(sa.func.sum(rows.c.usage_tokens), 0).label("usage_tokens"),
                sa.func.sum(rows.c.cost).label("charged"),
                sa.func.sum(sa.case((unfinished, rows.c.cost), else_=0)).label("pending"),
            )
            .group_by(rows.c.key)
            .order_by(rows.c.key)
        )
        async with self._read() as conn:
            return [
                {
                    "key": r.key if group_by != "day" else int(r.key),
                    "tasks": int(r.tasks),
                    "succeeded": int(r.succeeded or 0),
                    "failed": int(r.failed or 0),
                    "cancelled": int(r.cancelled or 0),
                    "unfinished": int(r.unfinished or 0),
                    "usage_tokens": int(r.usage_tokens or 0),
                    "charged": int(r.charged or 0),
                    "pending": int(r.pending or 0),
                }
                for r in await conn.execute(query)
            ]
