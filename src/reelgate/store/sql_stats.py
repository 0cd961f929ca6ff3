"""Aggregates for metrics: unfinished tasks, the admission queues, ledger totals."""

from __future__ import annotations

import sqlalchemy as sa

from reelgate.store.schema import NON_TERMINAL, ledger, tasks
from reelgate.store.sql_base import SqlBase


class StatsQueries(SqlBase):
    async def unfinished_counts(self) -> dict[tuple[str, str, str], int]:
        """(provider, model, status) → unfinished tasks (the partial index keeps this cheap)."""
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(tasks.c.provider, tasks.c.model, tasks.c.status, sa.func.count())
                .where(tasks.c.status.in_(NON_TERMINAL))
                .group_by(tasks.c.provider, tasks.c.model, tasks.c.status)
            )
            return {(p, m, s): int(n) for p, m, s, n in rows}

    async def unsubmitted_counts(self) -> dict[str, int]:
        """Provider → tasks waiting in reelgate's queue (not yet accepted upstream)."""
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(tasks.c.provider, sa.func.count())
                .where(tasks.c.status == "queued", tasks.c.upstream_id.is_(None))
                .group_by(tasks.c.provider)
            )
            return {p: int(n) for p, n in rows}

    async def ledger_totals(self) -> dict[str, int]:
        """Kind → the sum of every ledger movement of that kind."""
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(ledger.c.kind, sa.func.sum(ledger.c.amount)).group_by(ledger.c.kind)
            )
            return {k: int(v or 0) for k, v in rows}
