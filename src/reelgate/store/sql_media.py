"""Durable media in SQL: copy jobs written with a task's success, leased claims, completion and
expiry."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.core.lifecycle import Task
from reelgate.core.media import MediaCopy
from reelgate.store.schema import media_copies
from reelgate.store.sql_base import SqlBase


async def enqueue_copies(conn: AsyncConnection, task: Task, now: float) -> None:
    """Copy jobs for a task's result files; part of the transaction that records its success."""
    for variant, url in (("video", task.result_url), ("last_frame", task.last_frame_url)):
        if url.startswith(("http://", "https://")):
            await conn.execute(
                media_copies.insert().values(
                    task_id=task.id,
                    variant=variant,
                    owner_id=task.owner_id,
                    source_url=url,
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                )
            )


def _copy(row: sa.Row[tuple[object, ...]]) -> MediaCopy:
    m = row._mapping
    return MediaCopy(
        task_id=m["task_id"],
        variant=m["variant"],
        owner_id=m["owner_id"],
        source_url=m["source_url"],
        state=m["state"],
        attempts=m["attempts"],
        name=m["name"],
        size=m["size"],
    )


class MediaQueries(SqlBase):
    async def claim_copies(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> list[MediaCopy]:
        due = (
            sa.select(media_copies)
            .where(
                media_copies.c.state == "pending",
                media_copies.c.next_attempt_at <= now,
                sa.or_(media_copies.c.lease_until.is_(None), media_copies.c.lease_until < now),
            )
            .order_by(media_copies.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._tx() as conn:
            rows = (await conn.execute(due)).all()
            for r in rows:
                await conn.execute(
                    media_copies.update()
                    .where(media_copies.c.task_id == r.task_id, media_copies.c.variant == r.variant)
                    .values(lease_owner=worker, lease_until=now + lease_seconds)
                )
        return [_copy(r) for r in rows]

    async def finish_copy(
        self,
        copy: MediaCopy,
        *,
        state: str,
        now: float,
        name: str | None = None,
        size: int | None = None,
        expires_at: float | None = None,
        next_attempt_at: float | None = None,
        error: str = "",
    ) -> list[MediaCopy]:
        """Record an attempt's outcome; returns every copy of the task (to see if all are done)."""
        async with self._tx() as conn:
            await conn.execute(
                media_copies.update()
                .where(
                    media_copies.c.task_id == copy.task_id,
                    media_copies.c.variant == copy.variant,
                )
                .values(
                    state=state,
                    attempts=copy.attempts + 1,
                    name=name,
                    size=size,
                    stored_at=now if state == "stored" else None,
                    expires_at=expires_at,
                    next_attempt_at=next_attempt_at if next_attempt_at is not None else now,
                    last_error=error,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            rows = await conn.execute(
                sa.select(media_copies).where(media_copies.c.task_id == copy.task_id)
            )
            return [_copy(r) for r in rows]

    async def expire_copies(self, now: float, limit: int) -> list[MediaCopy]:
        """Mark stored copies past their retention as expired and return them (to delete)."""
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    sa.select(media_copies)
                    .where(media_copies.c.state == "stored", media_copies.c.expires_at <= now)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for r in rows:
                await conn.execute(
                    media_copies.update()
                    .where(media_copies.c.task_id == r.task_id, media_copies.c.variant == r.variant)
                    .values(state="expired")
                )
        return [_copy(r) for r in rows]
