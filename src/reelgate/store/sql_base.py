"""What every part of the SQL store shares: transactions, error translation, row mapping.

Driver errors become ``StoreError`` here, at the boundary, with a message that says what failed
(never the statement's parameters: prompts and secrets travel in them). On SQLite a writing
transaction begins with BEGIN IMMEDIATE (see ``reelgate.store.sql``); reads begin a plain one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.core.errors import ReelgateError
from reelgate.core.lifecycle import Status, Task
from reelgate.store.schema import tasks

# PostgreSQL notification channels: a task changed ("owner id version"); work is due.
TASK_CHANNEL = "reelgate_task"
WORK_CHANNEL = "reelgate_work"


class StoreError(ReelgateError):
    """The database failed (unreachable, locked too long); the request may be retried."""

    http_status = 503
    default_code = "store_unavailable"


def _row_to_task(m: RowMapping) -> Task:
    return Task(
        id=m["id"],
        owner_id=m["owner_id"],
        provider=m["provider"],
        model=m["model"],
        request=m["request"],
        status=Status(m["status"]),
        submit_time=m["submit_time"],
        start_time=m["start_time"],
        finish_time=m["finish_time"],
        upstream_id=m["upstream_id"],
        result_url=m["result_url"],
        last_frame_url=m["last_frame_url"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        usage_tokens=m["usage_tokens"],
        usage_seconds=m["usage_seconds"],
        next_poll_at=m["next_poll_at"],
        poll_attempts=m["poll_attempts"],
        submit_attempts=m["submit_attempts"],
        missing_looks=m["missing_looks"],
        version=m["version"],
        channel=m["channel"],
        deadline_at=m["deadline_at"],
        submitted_at=m["submitted_at"],
        submit_started_at=m["submit_started_at"],
        created_at=m["created_at"],
        callback_url=m["callback_url"],
        media_state=m["media_state"],
        video_ref=m["video_ref"],
        last_frame_ref=m["last_frame_ref"],
        deleted_at=m["deleted_at"],
        tried_channels=m["tried_channels"],
        offering_providers=m["offering_providers"],
        request_id=m["request_id"],
    )


def _task_values(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "owner_id": task.owner_id,
        "provider": task.provider,
        "model": task.model,
        "request": task.request,
        "upstream_id": task.upstream_id,
        "status": task.status.value,
        "result_url": task.result_url,
        "last_frame_url": task.last_frame_url,
        "error_code": task.error_code,
        "error_message": task.error_message,
        "usage_tokens": task.usage_tokens,
        "usage_seconds": task.usage_seconds,
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "next_poll_at": task.next_poll_at,
        "poll_attempts": task.poll_attempts,
        "submit_attempts": task.submit_attempts,
        "missing_looks": task.missing_looks,
        "version": task.version,
        "channel": task.channel,
        "deadline_at": task.deadline_at,
        "submitted_at": task.submitted_at,
        "submit_started_at": task.submit_started_at,
        "created_at": task.created_at,
        "callback_url": task.callback_url,
        "media_state": task.media_state,
        "video_ref": task.video_ref,
        "last_frame_ref": task.last_frame_ref,
        "deleted_at": task.deleted_at,
        "tried_channels": task.tried_channels,
        "offering_providers": task.offering_providers,
        "request_id": task.request_id,
    }


_TASK_COLS = tuple(c for c in tasks.c if c.name not in ("lease_owner", "lease_until", "nudged"))


# SQLSTATE classes of a database that cannot serve now (not of a bad statement): connection
# exceptions, authorization, a missing database, resources, operator intervention (shutdown).
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D", "53", "57")


def _a_bug(exc: sa.exc.OperationalError) -> bool:
    """SQLite reports bad statements as operational errors too."""
    text = str(exc.orig)
    return "syntax error" in text or text.startswith(("no such table", "no such column"))


def _unavailable(exc: sa.exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(state, str) and state[:2] in _UNAVAILABLE_SQLSTATES:
            return True
    return False


class SqlBase:
    """The engine, transactions and shared statements of ``SqlStore``.

    ``connect_timeout`` and ``statement_timeout`` are the bounds ``open_store`` gave the driver
    (seconds; None: the driver's own), named in the message of a timeout."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connect_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> None:
        self._engine = engine
        self.dialect = engine.dialect.name
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self._get_task = sa.select(*_TASK_COLS).where(
            tasks.c.id == sa.bindparam("task_id"), tasks.c.owner_id == sa.bindparam("owner_id")
        )

    @asynccontextmanager
    async def _tx(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction. On SQLite a writing one starts with BEGIN IMMEDIATE: it takes the
        write lock up front (waiting up to busy_timeout) instead of failing on upgrade."""
        connected = False
        try:
            async with self._engine.connect() as conn:
                connected = True
                await conn.execution_options(reelgate_write=write)
                async with conn.begin():
                    yield conn
        except TimeoutError as exc:  # the driver's own bounds: a server that accepts, then hangs
            raise StoreError(self._no_answer(connected)) from exc
        except sa.exc.OperationalError as exc:
            if _a_bug(exc):
                raise  # a bad statement is ours to fix, not the database being away
            raise StoreError(f"database unavailable: {exc.orig}") from exc
        except sa.exc.InterfaceError as exc:
            raise StoreError(f"database connection failed: {exc.orig}") from exc
        except sa.exc.TimeoutError as exc:  # the pool's: every connection busy for too long
            raise StoreError(f"database busy: no free connection ({exc})") from exc
        except sa.exc.DBAPIError as exc:
            if not _unavailable(exc):
                raise
            raise StoreError(f"database unavailable: {exc.orig}") from exc
        except OSError as exc:
            raise StoreError(f"database unreachable: {exc or type(exc).__name__}") from exc

    def _no_answer(self, connected: bool) -> str:
        where = self._engine.url.host or "the database"
        if self._engine.url.port:
            where = f"{where}:{self._engine.url.port}"
        if connected:
            bound = self.statement_timeout
            what = "a statement got no answer"
        else:
            bound = self.connect_timeout
            what = "no connection could be made"
        within = f" within {bound:g} s" if bound is not None else ""
        return f"database unavailable: {what} from {where}{within}"

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._tx(write=False)

    async def _notify_work(self, conn: AsyncConnection) -> None:
        if self.dialect == "postgresql":
            await conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": WORK_CHANNEL})
