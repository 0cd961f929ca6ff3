"""The Store contract, run against a real SQLite file and, where reachable, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from reelgate.core.ids import new_task_id, new_token
from reelgate.core.lifecycle import Status, Task
from reelgate.store.sql import SqlStore, open_store

pytestmark = pytest.mark.anyio

PG_ADMIN = os.environ.get("REELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _pg_database() -> str:
    """A fresh, empty database for one test; dropped by the fixture afterwards."""
    name = f"reelgate_t_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI and unreachable at {PG_ADMIN}: {exc}")
        pytest.skip(f"no PostgreSQL reachable at {PG_ADMIN} ({exc}); set REELGATE_TEST_PG")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SqlStore]:
    dbname = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'reelgate.db'}"
    else:
        dbname = await _pg_database()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}"
    s = await open_store(url)
    await s.migrate()
    yield s
    await s.close()
    if dbname:
        await _drop(dbname)


def task(owner: str, **kw: object) -> Task:
    base = Task(
        id=new_task_id(),
        owner_id=owner,
        provider="sandbox",
        model="sandbox-t2v",
        request={"prompt": "x", "options": {"n": 1}},
        status=Status.QUEUED,
        submit_time=100,
        next_poll_at=0.0,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


async def test_migrate_is_idempotent_and_current(store: SqlStore) -> None:
    await store.migrate()
    assert await store.schema_is_current()


async def test_meta_keeps_the_first_value(store: SqlStore) -> None:
    values = await asyncio.gather(*(store.get_or_set_meta("k", f"v{i}") for i in range(5)))
    assert len(set(values)) == 1
    assert await store.get_or_set_meta("k", "other") == values[0]


async def test_tokens(store: SqlStore) -> None:
    plain = new_token()
    record = await store.create_token("ci", plain, 10)
    assert await store.token_by_hash(plain.hash) == record
    assert await store.token_by_hash("0" * 64) is None
    assert await store.count_active_tokens() == 1
    revoked = await store.revoke_token(plain.prefix, 20)
    assert revoked is not None
    assert revoked.revoked_at == 20
    assert not revoked.active
    assert await store.count_active_tokens() == 0
    assert await store.revoke_token("rg_nothing", 30) is None
    assert [t.id for t in await store.list_tokens()] == [record.id]


async def test_tasks_are_found_by_owner_and_id_only(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    b = await store.create_token("b", new_token(), 1)
    t = task(a.id)
    await store.insert_task(t)
    assert await store.get_task(a.id, t.id) == t
    assert await store.get_task(b.id, t.id) is None
    assert await store.find_task(t.id) == t


async def test_claims_lease_and_skip(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    due = [task(a.id) for _ in range(3)]
    later = task(a.id, next_poll_at=500.0)
    done = task(a.id, status=Status.SUCCESS, result_url="u")
    for t in (*due, later, done):
        await store.insert_task(t)
    first = await store.claim_due(100.0, 2, "w1", 30)
    second = await store.claim_due(100.0, 10, "w2", 30)
    assert len(first) == 2
    assert len(second) == 1
    assert {t.id for t in first} | {t.id for t in second} == {t.id for t in due}
    assert await store.claim_due(100.0, 10, "w3", 30) == []
    await store.release_leases("w1")
    assert len(await store.claim_due(100.0, 10, "w3", 30)) == 2
    # Later, every lease has run out: all non-terminal tasks come back, the finished one never.
    again = await store.claim_due(600.0, 10, "w4", 30)
    assert {t.id for t in again} == {t.id for t in (*due, later)}


async def test_concurrent_claims_never_share_a_task(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    for _ in range(40):
        await store.insert_task(task(a.id))
    batches = await asyncio.gather(*(store.claim_due(100.0, 7, f"w{i}", 30) for i in range(8)))
    ids = [t.id for batch in batches for t in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_save_is_optimistic(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    t = task(a.id)
    await store.insert_task(t)
    moved = dataclasses.replace(t, status=Status.IN_PROGRESS, start_time=110, version=2)
    assert await store.save_task(moved, expected_version=1)
    stale = dataclasses.replace(t, status=Status.FAILURE, version=2)
    assert not await store.save_task(stale, expected_version=1)
    assert await store.get_task(a.id, t.id) == moved
