"""The SQL store: SQLAlchemy Core on asyncio, the same statements on SQLite and PostgreSQL.

Core rather than the ORM keeps the read path cheap (the hot status GET is mostly served from the
service's cache, and a miss costs one indexed primary-key SELECT). Driver errors are translated to
``StoreError`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from reelgate.core.errors import ReelgateError
from reelgate.core.ids import ApiToken, NewToken, new_id
from reelgate.core.lifecycle import Status, Task
from reelgate.store.schema import NON_TERMINAL, api_tokens, meta, tasks

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same in every reelgate process sharing a database.
_MIGRATION_LOCK = 0x7265656C


class StoreError(ReelgateError):
    """The database failed (unreachable, locked too long); the request may be retried."""

    http_status = 503
    default_code = "store_unavailable"


def async_url(url: str) -> str:
    """Map the user-facing URL to the asyncio driver SQLAlchemy should use."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the CLI and the server work on one file at once; a busy wait beats "locked".
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=10000",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    if MigrationContext.configure(connection).get_current_revision() == head:
        return
    command.upgrade(_alembic_config(connection), "head")


def _current_is_head(connection: Connection) -> bool:
    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() == head


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
        next_poll_at=m["next_poll_at"],
        poll_attempts=m["poll_attempts"],
        submit_attempts=m["submit_attempts"],
        missing_looks=m["missing_looks"],
        version=m["version"],
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
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "next_poll_at": task.next_poll_at,
        "poll_attempts": task.poll_attempts,
        "submit_attempts": task.submit_attempts,
        "missing_looks": task.missing_looks,
        "version": task.version,
    }


def _row_to_token(m: RowMapping) -> ApiToken:
    return ApiToken(
        id=m["id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


_TOKEN_COLS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.prefix,
    api_tokens.c.created_at,
    api_tokens.c.revoked_at,
)
_TASK_COLS = tuple(c for c in tasks.c if c.name not in ("lease_owner", "lease_until"))


class SqlStore:
    """The one Store implementation (see ``reelgate.store.base.Store``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.dialect = engine.dialect.name
        self._get_task = sa.select(*_TASK_COLS).where(
            tasks.c.id == sa.bindparam("task_id"), tasks.c.owner_id == sa.bindparam("owner_id")
        )
        self._token_by_hash = sa.select(*_TOKEN_COLS).where(
            api_tokens.c.token_hash == sa.bindparam("token_hash")
        )

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"database unavailable: {exc.orig}") from exc
        except sa.exc.InterfaceError as exc:
            raise StoreError(f"database connection failed: {exc.orig}") from exc
        except OSError as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    async def migrate(self) -> None:
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                # Several replicas may start together; one migrates, the others wait.
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)

    async def schema_is_current(self) -> bool:
        async with self._tx() as conn:
            return await conn.run_sync(_current_is_head)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def get_or_set_meta(self, key: str, value: str) -> str:
        async with self._tx() as conn:
            found = (
                await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))
            ).scalar_one_or_none()
            if found is not None:
                return str(found)
            try:
                async with conn.begin_nested():
                    await conn.execute(meta.insert().values(key=key, value=value))
            except sa.exc.IntegrityError:
                pass  # another process stored it first; read theirs below
            stored = (
                await conn.execute(sa.select(meta.c.value).where(meta.c.key == key))
            ).scalar_one()
            return str(stored)

    async def create_token(self, name: str, token: NewToken, now: int) -> ApiToken:
        record = ApiToken(id=new_id("tok_"), name=name, prefix=token.prefix, created_at=now)
        async with self._tx() as conn:
            await conn.execute(
                api_tokens.insert().values(
                    id=record.id,
                    name=name,
                    prefix=token.prefix,
                    token_hash=token.hash,
                    created_at=now,
                )
            )
        return record

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        async with self._tx() as conn:
            row = (await conn.execute(self._token_by_hash, {"token_hash": token_hash})).first()
        return _row_to_token(row._mapping) if row else None

    async def list_tokens(self) -> Sequence[ApiToken]:
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(*_TOKEN_COLS).order_by(api_tokens.c.created_at))
            return [_row_to_token(r._mapping) for r in rows]

    async def revoke_token(self, ref: str, now: int) -> ApiToken | None:
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    sa.select(*_TOKEN_COLS).where(
                        sa.or_(api_tokens.c.id == ref, api_tokens.c.prefix == ref)
                    )
                )
            ).all()
            if len(rows) != 1:
                return None
            token = _row_to_token(rows[0]._mapping)
            if token.revoked_at is None:
                await conn.execute(
                    api_tokens.update().where(api_tokens.c.id == token.id).values(revoked_at=now)
                )
                token = ApiToken(
                    id=token.id,
                    name=token.name,
                    prefix=token.prefix,
                    created_at=token.created_at,
                    revoked_at=now,
                )
            return token

    async def count_active_tokens(self) -> int:
        async with self._tx() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).where(api_tokens.c.revoked_at.is_(None))
            )
            return int(count.scalar_one())

    async def insert_task(self, task: Task) -> None:
        async with self._tx() as conn:
            await conn.execute(tasks.insert().values(**_task_values(task)))

    async def get_task(self, owner_id: str, task_id: str) -> Task | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(self._get_task, {"task_id": task_id, "owner_id": owner_id})
            ).first()
        return _row_to_task(row._mapping) if row else None

    async def find_task(self, task_id: str) -> Task | None:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(*_TASK_COLS).where(tasks.c.id == task_id))).first()
        return _row_to_task(row._mapping) if row else None

    async def claim_due(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        due = (
            sa.select(tasks.c.id)
            .where(
                tasks.c.status.in_(NON_TERMINAL),
                tasks.c.next_poll_at <= now,
                sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
            )
            .order_by(tasks.c.next_poll_at)
            .limit(limit)
            # PostgreSQL: concurrent workers skip each other's rows instead of waiting.
            .with_for_update(skip_locked=True)
        )
        async with self._tx() as conn:
            rows = await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=worker, lease_until=now + lease_seconds)
                .returning(*_TASK_COLS)
            )
            return [_row_to_task(r._mapping) for r in rows]

    async def save_task(self, task: Task, expected_version: int) -> bool:
        values = _task_values(task)
        del values["id"], values["owner_id"]
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task.id, tasks.c.version == expected_version)
                .values(**values, lease_owner=None, lease_until=None)
            )
            return bool(result.rowcount)

    async def release_leases(self, worker: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.lease_owner == worker)
                .values(lease_owner=None, lease_until=None)
            )


async def open_store(database_url: str) -> SqlStore:
    """Create the engine for ``database_url`` (sqlite:///… or postgresql://…)."""
    url = async_url(database_url)
    engine = create_async_engine(url, pool_pre_ping=url.startswith("postgresql"))
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return SqlStore(engine)
