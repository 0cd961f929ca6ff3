"""The engine's queue in SQL: leased claims (due, admission, overdue) and the shared state the
engine learns and limits itself by (typical durations per model, request-rate buckets).

Claims lock their rows with ``FOR UPDATE SKIP LOCKED`` so concurrent workers on PostgreSQL take
disjoint batches; SQLite serializes writers and supports one worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.core.channels import AdmissionCaps
from reelgate.core.lifecycle import Task
from reelgate.store.schema import NON_TERMINAL, model_stats, rate_buckets, tasks
from reelgate.store.sql_base import _TASK_COLS, SqlBase, _row_to_task

# How much one finished task moves its model's typical duration.
LEARNING_WEIGHT = 0.2


class QueueQueries(SqlBase):
    async def _lease(
        self,
        conn: AsyncConnection,
        due: sa.Select[Any],
        worker: str,
        until: float,
        **extra: Any,
    ) -> list[Task]:
        """Lease the rows ``due`` selects (locked, skipping rows others hold) and return them
        as they were before the lease."""
        rows = (await conn.execute(due.with_for_update(skip_locked=True))).all()
        if not rows:
            return []
        ids = [r.id for r in rows]
        await conn.execute(
            tasks.update()
            .where(tasks.c.id.in_(ids))
            .values(lease_owner=worker, lease_until=until, **extra)
        )
        return [_row_to_task(r._mapping) for r in rows]

    @staticmethod
    def _free(now: float) -> sa.ColumnElement[bool]:
        return sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now)

    async def claim_due(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        due = (
            sa.select(*_TASK_COLS)
            .where(
                tasks.c.status.in_(NON_TERMINAL),
                tasks.c.upstream_id.is_not(None),
                tasks.c.next_poll_at <= now,
                self._free(now),
            )
            .order_by(tasks.c.next_poll_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            # The look about to happen serves any callback that came before it.
            return await self._lease(conn, due, worker, now + lease_seconds, nudged=False)

    async def next_due(self, now: float) -> float | None:
        """When the earliest submitted, unfinished task no worker holds is due for a look."""
        async with self._read() as conn:
            found = await conn.execute(
                sa.select(tasks.c.next_poll_at)
                .where(
                    tasks.c.status.in_(NON_TERMINAL),
                    tasks.c.upstream_id.is_not(None),
                    self._free(now),
                )
                .order_by(tasks.c.next_poll_at)
                .limit(1)
            )
            at = found.scalar_one_or_none()
            return None if at is None else float(at)

    async def claim_admission(
        self,
        provider: str,
        channel: str,
        caps: AdmissionCaps,
        now: float,
        worker: str,
        lease_seconds: float,
        limit: int,
        *,
        models: Sequence[str] | None = None,
    ) -> Sequence[Task]:
        """Lease the oldest unsubmitted tasks that ``channel`` (of ``provider``) has
        room for, and make them its own.

        Only tasks of ``models`` (None: any of ``provider``'s own tasks) whose request
        ``provider``'s offering can honour (``offering_providers``), that are free or already
        this channel's, and whose submit has not failed on this channel before
        (``tried_channels``), are taken: a task may move to a channel of another provider that
        offers its model until it has been created upstream.

        Room is counted from the channel's tasks in flight upstream (queued there, running, or
        being submitted right now) against ``caps``; on PostgreSQL an advisory lock per channel
        makes the count and the claim one step across workers.
        """
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                    {"k": f"reelgate:admission:{channel}"},
                )
            counts: dict[str, int] = {
                str(row[0]): int(row[1])
                for row in await conn.execute(
                    sa.select(tasks.c.status, sa.func.count())
                    .where(
                        tasks.c.channel == channel,
                        tasks.c.status.in_(NON_TERMINAL),
                        sa.or_(
                            tasks.c.upstream_id.is_not(None),
                            # being submitted: leased with an attempt under way
                            sa.and_(
                                tasks.c.submit_started_at.is_not(None),
                                tasks.c.lease_until >= now,
                            ),
                        ),
                    )
                    .group_by(tasks.c.status)
                )
            }
            queued, running = counts.get("queued", 0), counts.get("in_progress", 0)
            room = limit
            if caps.max_queued is not None:
                room = min(room, caps.max_queued - queued)
            if caps.max_in_flight is not None:
                room = min(room, caps.max_in_flight - queued - running)
            if room <= 0:
                return []
            routed = (
                [
                    tasks.c.model.in_(models),
                    sa.or_(
                        tasks.c.offering_providers == "",
                        tasks.c.offering_providers.contains(f",{provider},", autoescape=True),
                    ),
                ]
                if models is not None
                else [tasks.c.provider == provider]
            )
            due = (
                sa.select(*_TASK_COLS)
                .where(
                    *routed,
                    tasks.c.status == "queued",
                    tasks.c.upstream_id.is_(None),
                    # sticky: a task whose attempt may have reached a channel stays with it;
                    # a free one goes to a channel it has not failed on
                    sa.or_(
                        tasks.c.channel == channel,
                        sa.and_(
                            tasks.c.channel.is_(None),
                            sa.not_(
                                tasks.c.tried_channels.contains(f",{channel},", autoescape=True)
                            ),
                        ),
                    ),
                    tasks.c.next_poll_at <= now,
                    self._free(now),
                )
                .order_by(tasks.c.created_at, tasks.c.id)
                .limit(room)
            )
            claimed = await self._lease(
                conn,
                due,
                worker,
                now + lease_seconds,
                provider=provider,
                channel=channel,
                submit_started_at=sa.func.coalesce(tasks.c.submit_started_at, now),
            )
            return [dataclasses.replace(t, provider=provider) for t in claimed]

    async def claim_overdue(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        """Lease non-terminal tasks past their deadline (the sweeper ends them)."""
        due = (
            sa.select(*_TASK_COLS)
            .where(
                tasks.c.status.in_(NON_TERMINAL),
                tasks.c.deadline_at > 0,
                tasks.c.deadline_at <= now,
                self._free(now),
            )
            .order_by(tasks.c.deadline_at)
            .limit(limit)
        )
        async with self._tx() as conn:
            return await self._lease(conn, due, worker, now + lease_seconds)

    async def has_unsubmitted(self, provider: str, now: float) -> bool:
        """Whether a task of ``provider`` waits for admission now."""
        async with self._read() as conn:
            found = await conn.execute(
                sa.select(tasks.c.id)
                .where(self._waiting(now), tasks.c.provider == provider)
                .limit(1)
            )
            return found.first() is not None

    async def count_unsubmitted(self, now: float, limit: int) -> dict[str, int]:
        """How many tasks of each model wait for admission now (counted up to ``limit``)."""
        async with self._read() as conn:
            waiting = (
                sa.select(tasks.c.model)
                .where(self._waiting(now))
                .order_by(tasks.c.next_poll_at)
                .limit(limit)
                .subquery()
            )
            rows = await conn.execute(
                sa.select(waiting.c.model, sa.func.count()).group_by(waiting.c.model)
            )
            return {str(model): int(n) for model, n in rows}

    def _waiting(self, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(
            tasks.c.status == "queued",
            tasks.c.upstream_id.is_(None),
            tasks.c.next_poll_at <= now,
            self._free(now),
        )

    async def extend_leases(self, worker: str, now: float, until: float) -> int:
        """Push back every live lease ``worker`` holds to ``until`` (its heartbeat)."""
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.lease_owner == worker, tasks.c.lease_until >= now)
                .values(lease_until=until)
            )
            return int(result.rowcount)

    async def hold(self, task_id: str, worker: str, now: float, until: float) -> bool:
        """Renew ``worker``'s lease on one task if it still holds it; False if it was lost."""
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.lease_owner == worker,
                    tasks.c.lease_until >= now,
                    tasks.c.status.in_(NON_TERMINAL),
                )
                .values(lease_until=until)
            )
            return bool(result.rowcount)

    async def release_leases(self, worker: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.lease_owner == worker)
                .values(lease_owner=None, lease_until=None)
            )

    # -- what the schedule learns ----------------------------------------------------------------
    async def typical_durations(self) -> dict[tuple[str, str], float]:
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(
                    model_stats.c.provider, model_stats.c.model, model_stats.c.typical_seconds
                )
            )
            return {(r.provider, r.model): float(r.typical_seconds) for r in rows}

    async def learn_durations(
        self, provider: str, model: str, seconds: Sequence[float], now: float
    ) -> None:
        """Fold finished tasks' durations (oldest first) into the model's typical duration, an
        EWMA: the same as one sample at a time, in one statement."""
        if not seconds:
            return
        a, b = _fold(seconds)
        # A model's first sample is its typical duration; the rest fold into it.
        rest_a, rest_b = _fold(seconds[1:])
        first = rest_a * seconds[0] + rest_b
        where = (model_stats.c.provider == provider, model_stats.c.model == model)
        async with self._tx() as conn:
            for _ in range(2):
                updated = await conn.execute(
                    model_stats.update()
                    .where(*where)
                    .values(
                        typical_seconds=a * model_stats.c.typical_seconds + b,
                        samples=model_stats.c.samples + len(seconds),
                        updated_at=now,
                    )
                )
                if updated.rowcount:
                    return
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            model_stats.insert().values(
                                provider=provider,
                                model=model,
                                typical_seconds=first,
                                samples=len(seconds),
                                updated_at=now,
                            )
                        )
                    return
                except sa.exc.IntegrityError:
                    continue  # a concurrent first sample: update it instead

    # -- shared rate limits ----------------------------------------------------------------------
    async def take_tokens(
        self, key: str, wanted: int, rate: float, burst: float, now: float
    ) -> int:
        """Take up to ``wanted`` tokens from the bucket ``key``; returns how many were taken.

        The bucket refills at ``rate`` tokens per second up to ``burst``; every worker sharing the
        database shares it (the row is locked for the read-modify-write on PostgreSQL).
        """
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    sa.select(rate_buckets.c.tokens, rate_buckets.c.updated_at)
                    .where(rate_buckets.c.key == key)
                    .with_for_update()
                )
            ).first()
            if row is None:
                taken = int(min(wanted, burst))
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            rate_buckets.insert().values(
                                key=key, tokens=burst - taken, updated_at=now
                            )
                        )
                except sa.exc.IntegrityError:
                    return 0  # created concurrently: try again next round
                return taken
            tokens = min(burst, row.tokens + max(0.0, now - row.updated_at) * rate)
            taken = int(min(wanted, tokens))
            await conn.execute(
                rate_buckets.update()
                .where(rate_buckets.c.key == key)
                .values(tokens=tokens - taken, updated_at=max(now, row.updated_at))
            )
            return taken


def _fold(samples: Sequence[float]) -> tuple[float, float]:
    """(a, b) such that t <- t + w(s - t) for each sample in turn is t <- a*t + b."""
    a, b = 1.0, 0.0
    for s in samples:
        a, b = a * (1.0 - LEARNING_WEIGHT), b * (1.0 - LEARNING_WEIGHT) + LEARNING_WEIGHT * s
    return a, b
