"""Worker heartbeats: each worker records that it is alive; readiness reads the freshest."""

from __future__ import annotations

import sqlalchemy as sa

from reelgate.store.schema import workers
from reelgate.store.sql_base import SqlBase

# A worker not seen for this long is forgotten (a crashed one leaves its row behind).
FORGET_AFTER_S = 24 * 3600.0


class WorkerRows(SqlBase):
    async def worker_seen(self, worker: str, now: float) -> None:
        async with self._tx() as conn:
            updated = await conn.execute(
                workers.update().where(workers.c.id == worker).values(seen_at=now)
            )
            if not updated.rowcount:
                await conn.execute(workers.insert().values(id=worker, started_at=now, seen_at=now))
            await conn.execute(workers.delete().where(workers.c.seen_at < now - FORGET_AFTER_S))

    async def worker_gone(self, worker: str) -> None:
        async with self._tx() as conn:
            await conn.execute(workers.delete().where(workers.c.id == worker))

    async def last_worker_seen(self) -> float | None:
        async with self._read() as conn:
            found = (await conn.execute(sa.select(sa.func.max(workers.c.seen_at)))).scalar()
        return float(found) if found is not None else None
