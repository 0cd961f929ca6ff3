"""The SQL store: SQLAlchemy Core on asyncio, the same statements on SQLite and PostgreSQL.

Core rather than the ORM keeps the read path cheap (the hot status GET is mostly served from the
service's cache, and a miss costs one indexed primary-key SELECT). Driver errors are translated to
``StoreError`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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

from reelgate.core.accounts import AdmissionCaps
from reelgate.core.errors import Conflict, ReelgateError
from reelgate.core.ids import ApiToken, NewToken, new_id
from reelgate.core.lifecycle import Status, Task
from reelgate.store.schema import (
    NON_TERMINAL,
    api_tokens,
    idempotency_keys,
    meta,
    model_stats,
    rate_buckets,
    tasks,
)

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works: it only has to be the same in every reelgate process sharing a database.
_MIGRATION_LOCK = 0x7265656C
# PostgreSQL notification channels: a task changed ("owner id version"); work is due.
TASK_CHANNEL = "reelgate_task"
WORK_CHANNEL = "reelgate_work"
# How much one finished task moves its model's typical duration.
LEARNING_WEIGHT = 0.2


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
        account=m["account"],
        deadline_at=m["deadline_at"],
        submitted_at=m["submitted_at"],
        submit_started_at=m["submit_started_at"],
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
        "account": task.account,
        "deadline_at": task.deadline_at,
        "submitted_at": task.submitted_at,
        "submit_started_at": task.submit_started_at,
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
    async def _tx(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction. On SQLite a writing one starts with BEGIN IMMEDIATE: it takes the
        write lock up front (waiting up to busy_timeout) instead of failing on upgrade."""
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(reelgate_write=write)
                async with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"database unavailable: {exc.orig}") from exc
        except sa.exc.InterfaceError as exc:
            raise StoreError(f"database connection failed: {exc.orig}") from exc
        except OSError as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._tx(write=False)

    async def migrate(self) -> None:
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                # Several replicas may start together; one migrates, the others wait.
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)

    async def schema_is_current(self) -> bool:
        async with self._read() as conn:
            return await conn.run_sync(_current_is_head)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._read() as conn:
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
        async with self._read() as conn:
            row = (await conn.execute(self._token_by_hash, {"token_hash": token_hash})).first()
        return _row_to_token(row._mapping) if row else None

    async def list_tokens(self) -> Sequence[ApiToken]:
        async with self._read() as conn:
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
        async with self._read() as conn:
            count = await conn.execute(
                sa.select(sa.func.count()).where(api_tokens.c.revoked_at.is_(None))
            )
            return int(count.scalar_one())

    async def insert_task(self, task: Task) -> None:
        async with self._tx() as conn:
            await conn.execute(tasks.insert().values(**_task_values(task)))
            await self._notify_work(conn)

    async def create_task(
        self, task: Task, key: str, fingerprint: str, since: float
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
                    await conn.execute(tasks.insert().values(**_task_values(task)))
                    await self._notify_work(conn)
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
        return _row_to_task(row._mapping) if row else None

    async def find_task(self, task_id: str) -> Task | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(*_TASK_COLS).where(tasks.c.id == task_id))).first()
        return _row_to_task(row._mapping) if row else None

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
            return await self._lease(conn, due, worker, now + lease_seconds)

    async def claim_admission(
        self,
        provider: str,
        account: str,
        caps: AdmissionCaps,
        now: float,
        worker: str,
        lease_seconds: float,
        limit: int,
    ) -> Sequence[Task]:
        """Lease the oldest unsubmitted tasks of ``provider`` that ``account`` has room for.

        Room is counted from the account's tasks in flight upstream (queued there, running, or
        being submitted right now) against ``caps``; on PostgreSQL an advisory lock per account
        makes the count and the claim one step across workers.
        """
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                    {"k": f"reelgate:admission:{provider}:{account}"},
                )
            counts: dict[str, int] = {
                str(row[0]): int(row[1])
                for row in await conn.execute(
                    sa.select(tasks.c.status, sa.func.count())
                    .where(
                        tasks.c.provider == provider,
                        tasks.c.account == account,
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
            due = (
                sa.select(*_TASK_COLS)
                .where(
                    tasks.c.provider == provider,
                    tasks.c.status == "queued",
                    tasks.c.upstream_id.is_(None),
                    # sticky: a task once tried on an account stays with it
                    sa.or_(tasks.c.account.is_(None), tasks.c.account == account),
                    tasks.c.next_poll_at <= now,
                    self._free(now),
                )
                .order_by(tasks.c.submit_time, tasks.c.next_poll_at, tasks.c.id)
                .limit(room)
            )
            return await self._lease(
                conn,
                due,
                worker,
                now + lease_seconds,
                account=account,
                submit_started_at=sa.func.coalesce(tasks.c.submit_started_at, now),
            )

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
        async with self._read() as conn:
            found = (
                await conn.execute(
                    sa.select(tasks.c.id)
                    .where(
                        tasks.c.provider == provider,
                        tasks.c.status == "queued",
                        tasks.c.upstream_id.is_(None),
                        tasks.c.next_poll_at <= now,
                        self._free(now),
                    )
                    .limit(1)
                )
            ).first()
            return found is not None

    async def save_task(self, task: Task, expected_version: int, *, notify: bool = False) -> bool:
        values = _task_values(task)
        del values["id"], values["owner_id"]
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task.id, tasks.c.version == expected_version)
                .values(**values, lease_owner=None, lease_until=None)
            )
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
        """Bring a submitted, unfinished task's next look forward to ``at`` (never later)."""
        async with self._tx() as conn:
            result = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status.in_(NON_TERMINAL),
                    tasks.c.upstream_id.is_not(None),
                    tasks.c.next_poll_at > at,
                )
                .values(next_poll_at=at)
            )
            if result.rowcount:
                await self._notify_work(conn)
            return bool(result.rowcount)

    async def release_leases(self, worker: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.lease_owner == worker)
                .values(lease_owner=None, lease_until=None)
            )

    async def _notify_work(self, conn: AsyncConnection) -> None:
        if self.dialect == "postgresql":
            await conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": WORK_CHANNEL})

    # -- what the schedule learns ----------------------------------------------------------------
    async def typical_durations(self) -> dict[tuple[str, str], float]:
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(
                    model_stats.c.provider, model_stats.c.model, model_stats.c.typical_seconds
                )
            )
            return {(r.provider, r.model): float(r.typical_seconds) for r in rows}

    async def learn_duration(self, provider: str, model: str, seconds: float, now: float) -> None:
        """Fold one finished task's duration into the model's typical duration (EWMA)."""
        where = (model_stats.c.provider == provider, model_stats.c.model == model)
        async with self._tx() as conn:
            for _ in range(2):
                updated = await conn.execute(
                    model_stats.update()
                    .where(*where)
                    .values(
                        typical_seconds=model_stats.c.typical_seconds
                        + LEARNING_WEIGHT * (seconds - model_stats.c.typical_seconds),
                        samples=model_stats.c.samples + 1,
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
                                typical_seconds=seconds,
                                samples=1,
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


async def open_store(database_url: str) -> SqlStore:
    """Create the engine for ``database_url`` (sqlite:///… or postgresql://…)."""
    url = async_url(database_url)
    engine = create_async_engine(url, pool_pre_ping=url.startswith("postgresql"))
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return SqlStore(engine)
