"""Cross-process wake-ups on PostgreSQL: LISTEN for task changes and for new work.

Writers NOTIFY in the same transaction as their change (see ``SqlStore``), so a listener hears
of it once it is committed. An API replica drops its cached copy and wakes its waiters (long-poll,
SSE); a worker wakes up to claim the work. On SQLite everything runs in one process and the
in-process events suffice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from reelgate.store.sql import TASK_CHANNEL, WORK_CHANNEL

log = logging.getLogger("reelgate.notify")

RECONNECT_S = 2.0


class PgListener:
    def __init__(
        self,
        dsn: str,
        *,
        on_task: Callable[[str, str, int], None],
        on_work: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._on_task = on_task
        self._on_work = on_work
        self._job: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._job = asyncio.create_task(self._run(), name="reelgate-pg-listener")

    async def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job

    def _task(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        owner_id, _, rest = payload.partition(" ")
        task_id, _, version = rest.partition(" ")
        if owner_id and task_id and version.isdigit():
            self._on_task(owner_id, task_id, int(version))

    def _work(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._on_work()

    async def _run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(TASK_CHANNEL, self._task)
                await conn.add_listener(WORK_CHANNEL, self._work)
                self.connected.set()
                self._on_work()  # anything missed while disconnected is found by claiming
                await lost.wait()
                log.warning("lost the PostgreSQL notification connection; reconnecting")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cannot listen for PostgreSQL notifications (%s); retrying", exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                        await conn.close(timeout=2)
            await asyncio.sleep(RECONNECT_S)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


def plain_dsn(database_url: str) -> str:
    """asyncpg's DSN for a reelgate database URL (``postgresql+asyncpg://`` → ``postgresql://``)."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url.removeprefix(prefix)
    return database_url
