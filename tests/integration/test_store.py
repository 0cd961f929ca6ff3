"""The Store contract, run against a real SQLite file and, where reachable, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import Conflict
from reelgate.core.ids import new_task_id, new_token
from reelgate.core.lifecycle import Status, Task
from reelgate.store.sql import TASK_CHANNEL, SqlStore, open_store
from reelgate.store.sql_base import StoreError
from tests.pg import PG_ADMIN, _drop, _pg_database

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
        upstream_id="up-" + secrets.token_hex(4),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def unsubmitted(owner: str, **kw: object) -> Task:
    return task(owner, upstream_id=None, **kw)


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


async def test_next_due_is_the_earliest_look_no_worker_holds(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    assert await store.next_due(100.0) is None
    await store.insert_task(task(a.id, next_poll_at=50.0, status=Status.SUCCESS, result_url="u"))
    await store.insert_task(task(a.id, next_poll_at=60.0, upstream_id=None))  # not submitted
    assert await store.next_due(100.0) is None
    await store.insert_task(task(a.id, next_poll_at=300.0))
    soon = task(a.id, next_poll_at=120.0, status=Status.IN_PROGRESS)
    await store.insert_task(soon)
    assert await store.next_due(100.0) == 120.0
    (held,) = await store.claim_due(130.0, 1, "w", 30)  # a worker looks at it until 160
    assert held.id == soon.id
    assert await store.next_due(130.0) == 300.0
    assert await store.next_due(170.0) == 120.0  # its lease ran out: due again


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


async def test_admission_fills_an_account_up_to_its_caps_in_order(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    waiting = [unsubmitted(a.id, submit_time=100 + i, created_at=100.0 + i) for i in range(6)]
    upstream_queued = task(a.id, channel="acct")
    running = task(a.id, channel="acct", status=Status.IN_PROGRESS)
    elsewhere = task(a.id, channel="other")  # another account's load does not count
    for t in (*reversed(waiting), upstream_queued, running, elsewhere):
        await store.insert_task(t)
    caps = AdmissionCaps(max_queued=3, max_in_flight=4)
    first = await store.claim_admission("sandbox", "acct", caps, 200.0, "w1", 30, 10)
    # in flight: 1 queued + 1 running; room: min(3 - 1, 4 - 2) = 2, oldest first
    assert [t.id for t in first] == [t.id for t in waiting[:2]]
    assert all(t.submit_started_at is None for t in first)  # as they were before the claim
    claimed = await store.find_task(first[0].id)
    assert claimed is not None
    assert (claimed.channel, claimed.submit_started_at) == ("acct", 200.0)
    # The two being submitted count against the caps until they are released or submitted.
    assert await store.claim_admission("sandbox", "acct", caps, 200.0, "w2", 30, 10) == []
    # No caps: the rest, except what another account already tried (sticky).
    sticky = dataclasses.replace(waiting[5], channel="other")
    assert await store.save_task(sticky, expected_version=1)
    rest = await store.claim_admission("sandbox", "acct", AdmissionCaps(), 200.0, "w2", 30, 10)
    assert [t.id for t in rest] == [t.id for t in waiting[2:5]]
    assert await store.has_unsubmitted("sandbox", 200.0)
    assert not await store.has_unsubmitted("ark", 200.0)


async def test_concurrent_admission_never_exceeds_the_cap(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    for i in range(40):
        await store.insert_task(unsubmitted(a.id, submit_time=i, created_at=float(i)))
    caps = AdmissionCaps(max_queued=7)
    batches = await asyncio.gather(
        *(store.claim_admission("sandbox", "acct", caps, 100.0, f"w{i}", 30, 5) for i in range(8))
    )
    ids = [t.id for batch in batches for t in batch]
    assert len(ids) == len(set(ids)) == 7


async def test_overdue_tasks_are_claimed_for_the_sweeper(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    late = task(a.id, deadline_at=50.0)
    fine = task(a.id, deadline_at=500.0)
    unset = task(a.id, deadline_at=0.0)
    over_but_done = task(a.id, deadline_at=50.0, status=Status.FAILURE)
    for t in (late, fine, unset, over_but_done):
        await store.insert_task(t)
    assert [t.id for t in await store.claim_overdue(100.0, 10, "w", 30)] == [late.id]
    assert await store.claim_overdue(100.0, 10, "w2", 30) == []  # leased


async def test_idempotency_keys(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    b = await store.create_token("b", new_token(), 1)
    first, created = await store.create_task(task(a.id, submit_time=1000), "k1", "fp", 0.0)
    assert created
    again, created = await store.create_task(task(a.id, submit_time=1001), "k1", "fp", 0.0)
    assert (again.id, created) == (first.id, False)
    with pytest.raises(Conflict) as err:
        await store.create_task(task(a.id, submit_time=1002), "k1", "other", 0.0)
    assert err.value.code == "idempotency_key_reused"
    # Keys are per token, and forgotten after the window.
    _, created = await store.create_task(task(b.id, submit_time=1003), "k1", "fp", 0.0)
    assert created
    later, created = await store.create_task(task(a.id, submit_time=9000), "k1", "x", 5000.0)
    assert created
    assert later.id != first.id


async def test_concurrent_duplicates_make_one_task(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    results = await asyncio.gather(
        *(store.create_task(task(a.id, submit_time=1000), "dup", "fp", 0.0) for _ in range(10))
    )
    assert len({t.id for t, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_nudge_only_brings_a_submitted_unfinished_look_forward(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    waiting = task(a.id, next_poll_at=500.0)
    soon = task(a.id, next_poll_at=10.0)
    done = task(a.id, next_poll_at=500.0, status=Status.SUCCESS, result_url="u")
    fresh = unsubmitted(a.id, next_poll_at=500.0)
    for t in (waiting, soon, done, fresh):
        await store.insert_task(t)
    assert await store.nudge(waiting.id, 100.0)
    assert not await store.nudge(waiting.id, 100.5)  # a burst: already brought forward
    assert await store.nudge(soon.id, 100.0)  # already due: only marked, never delayed
    assert not await store.nudge(done.id, 100.0)
    assert not await store.nudge(fresh.id, 100.0)
    moved = await store.find_task(waiting.id)
    assert moved is not None
    assert moved.next_poll_at == 100.0
    assert moved.version == waiting.version  # not a visible change
    still = await store.find_task(soon.id)
    assert still is not None
    assert still.next_poll_at == 10.0


async def test_a_callback_during_a_look_is_not_lost(store: SqlStore) -> None:
    a = await store.create_token("a", new_token(), 1)
    t = task(a.id, next_poll_at=10.0)
    await store.insert_task(t)
    (looking,) = await store.claim_due(100.0, 10, "w", 30)
    assert await store.nudge(t.id, 100.2)  # the end is reported while the look is in flight
    # The look (which saw the task still running) saves with its next look far away...
    await store.save_task(dataclasses.replace(looking, next_poll_at=400.0), looking.version)
    saved = await store.find_task(t.id)
    assert saved is not None
    assert saved.next_poll_at <= 100.2  # ...but the callback's look stays due
    # A look that starts after the callback serves it: its save is not held back.
    (again,) = await store.claim_due(101.0, 10, "w", 30)
    await store.save_task(dataclasses.replace(again, next_poll_at=400.0), again.version)
    later = await store.find_task(t.id)
    assert later is not None
    assert later.next_poll_at == 400.0


async def test_typical_durations_are_learned(store: SqlStore) -> None:
    assert await store.typical_durations() == {}
    await store.learn_durations("ark", "m", [100.0], 1.0)
    await store.learn_durations("ark", "m", [200.0], 2.0)
    await asyncio.gather(*(store.learn_durations("ark", "n", [10.0], 3.0) for _ in range(4)))
    learned = await store.typical_durations()
    assert learned[("ark", "m")] == pytest.approx(120.0)
    assert learned[("ark", "n")] == pytest.approx(10.0)
    # Several at once fold exactly as one at a time, for a new model and a known one.
    await store.learn_durations("ark", "k", [100.0, 200.0, 50.0], 4.0)
    await store.learn_durations("ark", "m", [300.0, 0.0], 5.0)
    learned = await store.typical_durations()
    assert learned[("ark", "k")] == pytest.approx((100 + 0.2 * 100) * 0.8 + 0.2 * 50)
    assert learned[("ark", "m")] == pytest.approx((120 + 0.2 * 180) * 0.8)
    await store.learn_durations("ark", "m", [], 6.0)  # nothing to learn: unchanged
    assert (await store.typical_durations())[("ark", "m")] == pytest.approx(124.8)


async def test_rate_bucket_is_shared_and_refills(store: SqlStore) -> None:
    # 1 token per second, burst 3
    assert await store.take_tokens("k", 5, 1.0, 3.0, 100.0) == 3
    assert await store.take_tokens("k", 1, 1.0, 3.0, 100.5) == 0
    assert await store.take_tokens("k", 5, 1.0, 3.0, 102.0) == 2
    assert await store.take_tokens("k", 5, 1.0, 3.0, 1000.0) == 3  # capped at the burst
    taken = await asyncio.gather(*(store.take_tokens("j", 1, 0.001, 4.0, 5.0) for _ in range(8)))
    assert sum(taken) <= 4


async def test_a_saved_change_is_announced_on_postgresql(store: SqlStore) -> None:
    if store.dialect != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's; on SQLite one process holds every waiter")
    a = await store.create_token("a", new_token(), 1)
    t = task(a.id)
    await store.insert_task(t)
    heard: asyncio.Queue[str] = asyncio.Queue()
    url = store._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    try:
        await conn.add_listener(TASK_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        moved = dataclasses.replace(t, status=Status.IN_PROGRESS, version=2)
        assert await store.save_task(moved, expected_version=1, notify=True)
        assert await asyncio.wait_for(heard.get(), 10) == f"{a.id} {t.id} 2"
    finally:
        await conn.close()


async def test_tasks_in_flight_before_the_engine_migration_get_a_deadline(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from alembic import command

    from reelgate.store.sql import _alembic_config

    url = f"sqlite:///{tmp_path_factory.mktemp('upgrade') / 'old.db'}"
    old = await open_store(url)
    async with old._engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), "0001"))
        await conn.exec_driver_sql(
            "INSERT INTO api_tokens (id, name, prefix, token_hash, created_at) "
            "VALUES ('tok_1', 'a', 'rg_x', 'h', 1)"
        )
        for task_id, status in (("t_running", "in_progress"), ("t_done", "success")):
            await conn.exec_driver_sql(
                "INSERT INTO tasks (id, owner_id, provider, model, request, status, submit_time, "
                "next_poll_at) VALUES (?, 'tok_1', 'sandbox', 'm', '{}', ?, 1000, 0)",
                (task_id, status),
            )
    await old.close()
    store = await open_store(url)
    try:
        await store.migrate()
        running, done = await store.find_task("t_running"), await store.find_task("t_done")
        assert running is not None
        assert done is not None
        assert running.deadline_at == 1000 + 72 * 3600
        assert done.deadline_at == 0
        assert [t.id for t in await store.claim_overdue(1e9, 10, "w", 30)] == ["t_running"]
    finally:
        await store.close()


async def test_a_pool_with_no_free_connection_is_a_store_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('pool') / 'reelgate.db'}"
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.05)
    s = SqlStore(engine)
    try:
        await s.migrate()
        async with s._read():  # the only connection, held
            with pytest.raises(StoreError, match="no free connection"):
                await s.count_active_tokens()
        assert await s.count_active_tokens() == 0  # and usable again once it is back
    finally:
        await s.close()
