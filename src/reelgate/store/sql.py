"""The SQL store: SQLAlchemy Core on asyncio, the same statements on SQLite and PostgreSQL.

Core rather than the ORM keeps the read path cheap (the hot status GET is mostly served from the
service's cache, and a miss costs one indexed primary-key SELECT). ``SqlStore`` is assembled
from ``sql_tasks`` (task rows) and ``sql_queue`` (the engine's claims and shared state) on
``sql_base`` (transactions, error translation); this module adds the engine set-up, migrations,
instance metadata and API tokens.

The engine never logs statements or their parameters (``hide_parameters``; ``reelgate.logs``
keeps the driver loggers quiet), and on PostgreSQL a connection and each statement have a time
bound (``open_store``). On SQLite, ``ping`` also notices a database file that was deleted,
replaced or cannot be written, which the open connections would otherwise hide until a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
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

from reelgate.core.crypto import SecretBox
from reelgate.core.ids import ApiToken, NewToken, new_id
from reelgate.store.schema import api_tokens, meta
from reelgate.store.sql_base import TASK_CHANNEL, WORK_CHANNEL, StoreError
from reelgate.store.sql_channels import ChannelRows
from reelgate.store.sql_ledger import LedgerQueries
from reelgate.store.sql_media import MediaQueries
from reelgate.store.sql_queue import QueueQueries
from reelgate.store.sql_stats import StatsQueries
from reelgate.store.sql_tasks import TaskRows
from reelgate.store.sql_webhooks import WebhookQueries
from reelgate.store.sql_workers import WorkerRows

__all__ = ["TASK_CHANNEL", "WORK_CHANNEL", "SqlStore", "StoreError", "async_url", "open_store"]

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same in every reelgate process sharing a database.
_MIGRATION_LOCK = 0x7265656C
# The default bounds on PostgreSQL (s): opening a connection; one statement.
CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 15.0
# Less free space than this beside a SQLite file and it counts as full (bytes).
MIN_FREE_BYTES = 1024 * 1024
# The meta row a SQLite readiness check writes (a read-only file or a full disk shows only then).
_PROBE_KEY = "readiness_probe"


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
    # Transactions are begun by _sqlite_begin, not implicitly by the driver.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("reelgate_write", True)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


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


def _row_to_token(m: RowMapping) -> ApiToken:
    return ApiToken(
        id=m["id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        models=tuple(m["models"] or ()),
        rpm=m["rpm"],
        max_concurrent=m["max_concurrent"],
        quota_limited=bool(m["quota_limited"]),
    )


_TOKEN_COLS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.prefix,
    api_tokens.c.created_at,
    api_tokens.c.revoked_at,
    api_tokens.c.models,
    api_tokens.c.rpm,
    api_tokens.c.max_concurrent,
    api_tokens.c.quota_limited,
)


class SqlStore(
    TaskRows,
    QueueQueries,
    WebhookQueries,
    MediaQueries,
    ChannelRows,
    LedgerQueries,
    WorkerRows,
    StatsQueries,
):
    """The one Store implementation (see ``reelgate.store.base.Store``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        secret_box: SecretBox | None = None,
        connect_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> None:
        super().__init__(
            engine, connect_timeout=connect_timeout, statement_timeout=statement_timeout
        )
        # Seals webhook signing secrets at rest (None: kept as given).
        self.secret_box = secret_box
        self._token_by_hash = sa.select(*_TOKEN_COLS).where(
            api_tokens.c.token_hash == sa.bindparam("token_hash")
        )
        database = engine.url.database if self.dialect == "sqlite" else None
        self._file = Path(database).resolve() if database and database != ":memory:" else None
        # (device, inode) of the SQLite file when it was first seen.
        self._file_id: tuple[int, int] | None = None

    async def migrate(self) -> None:
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                # Several replicas may start together; one migrates, the others wait.
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)
        if self._file is not None:
            await asyncio.to_thread(self._check_file)  # remembers which file it is

    async def schema_is_current(self) -> bool:
        async with self._read() as conn:
            return await conn.run_sync(_current_is_head)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise ``StoreError`` if the database cannot serve: unreachable, or (SQLite) its file
        deleted, replaced, on a full disk or not writable."""
        if self._file is None:
            async with self._read() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return
        await asyncio.to_thread(self._check_file)
        async with self._tx() as conn:
            await conn.execute(meta.delete().where(meta.c.key == _PROBE_KEY))
            await conn.execute(meta.insert().values(key=_PROBE_KEY, value=str(os.getpid())))

    def _check_file(self) -> None:
        """The SQLite file is still the one this store opened, with room to write."""
        path = self._file
        assert path is not None
        try:
            found = path.stat()
        except FileNotFoundError:
            raise StoreError(
                f"the database file {path} is gone (deleted or moved): what is written now "
                "is lost at the next start; put it back and restart"
            ) from None
        except OSError as exc:
            raise StoreError(f"the database file {path} cannot be read: {exc}") from None
        identity = (found.st_dev, found.st_ino)
        if self._file_id is None:
            self._file_id = identity
        elif identity != self._file_id:
            raise StoreError(
                f"the database file {path} was replaced by another file since it was opened; "
                "restart to use the new one"
            )
        disk = os.statvfs(path.parent)
        free = disk.f_bavail * disk.f_frsize
        if free < MIN_FREE_BYTES:
            raise StoreError(f"the disk holding {path} is full ({free} bytes free)")

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

    async def create_token(
        self,
        name: str,
        token: NewToken,
        now: int,
        *,
        models: Sequence[str] = (),
        rpm: int | None = None,
        max_concurrent: int | None = None,
    ) -> ApiToken:
        record = ApiToken(
            id=new_id("tok_"),
            name=name,
            prefix=token.prefix,
            created_at=now,
            models=tuple(models),
            rpm=rpm,
            max_concurrent=max_concurrent,
        )
        async with self._tx() as conn:
            await conn.execute(
                api_tokens.insert().values(
                    id=record.id,
                    name=name,
                    prefix=token.prefix,
                    token_hash=token.hash,
                    created_at=now,
                    models=list(models) or None,
                    rpm=rpm,
                    max_concurrent=max_concurrent,
                )
            )
        return record

    async def _one_token(self, conn: AsyncConnection, ref: str) -> ApiToken | None:
        rows = (
            await conn.execute(
                sa.select(*_TOKEN_COLS).where(
                    sa.or_(api_tokens.c.id == ref, api_tokens.c.prefix == ref)
                )
            )
        ).all()
        return _row_to_token(rows[0]._mapping) if len(rows) == 1 else None

    async def set_token_limits(self, ref: str, **limits: Any) -> ApiToken | None:
        """Change a token's limits (``models``, ``rpm``, ``max_concurrent``); None: no match."""
        async with self._tx() as conn:
            token = await self._one_token(conn, ref)
            if token is None:
                return None
            if not limits:
                return token  # nothing to change (e.g. a PATCH of the webhook alone)
            if "models" in limits:
                limits["models"] = list(limits["models"] or ()) or None
            await conn.execute(
                api_tokens.update().where(api_tokens.c.id == token.id).values(**limits)
            )
            return await self._one_token(conn, token.id)

    async def rotate_token(self, ref: str, token: NewToken) -> ApiToken | None:
        """Give a token a new secret (same id, name and limits); the old one stops working."""
        async with self._tx() as conn:
            found = await self._one_token(conn, ref)
            if found is None or found.revoked_at is not None:
                return None
            await conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == found.id)
                .values(token_hash=token.hash, prefix=token.prefix)
            )
            return await self._one_token(conn, found.id)

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        async with self._read() as conn:
            row = (await conn.execute(self._token_by_hash, {"token_hash": token_hash})).first()
        return _row_to_token(row._mapping) if row else None

    async def list_tokens(self) -> Sequence[ApiToken]:
        async with self._read() as conn:
            rows = await conn.execute(sa.select(*_TOKEN_COLS).order_by(api_tokens.c.created_at))
            return [_row_to_token(r._mapping) for r in rows]

    async def revoke_token(self, ref: str, now: int) -> ApiToken | None:
        async with self._tx() as conn:
            token = await self._one_token(conn, ref)
            if token is None:
                return None
            if token.revoked_at is None:
                await conn.execute(
                    api_tokens.update().where(api_tokens.c.id == token.id).values(revoked_at=now)
                )
                token = dataclasses.replace(token, revoked_at=now)
            return token

    async def count_active_tokens(self) -> int:
        async with self._read() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).where(api_tokens.c.revoked_at.is_(None))
            )
            return int(count.scalar_one())


async def open_store(
    database_url: str,
    *,
    secret_box: SecretBox | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    statement_timeout: float = STATEMENT_TIMEOUT,
) -> SqlStore:
    """Create the engine for ``database_url`` (sqlite:///… or postgresql://…); ``secret_box``
    seals the secrets the store keeps (webhook signing secrets).

    On PostgreSQL, opening a connection waits at most ``connect_timeout`` seconds and a
    statement ``statement_timeout`` (the driver cancels it then): a server that accepts and
    never answers costs a request those seconds and a 503 that says so, not a hang."""
    url = async_url(database_url)
    if url.startswith("postgresql"):
        # A worker keeps about this many transactions under way (submissions, look-ups, the
        # outboxes): keeping them all open beats opening and closing overflow connections in
        # every burst (each a PostgreSQL backend started, set up and ended). The cap is
        # SQLAlchemy's default one (5 + 10 overflow); past it, callers wait for a connection.
        engine = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=15,
            max_overflow=0,
            hide_parameters=True,
            connect_args={"timeout": connect_timeout, "command_timeout": statement_timeout},
        )
        return SqlStore(
            engine,
            secret_box=secret_box,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
    engine = create_async_engine(url, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return SqlStore(engine, secret_box=secret_box)
