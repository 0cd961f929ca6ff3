"""A property test of the ledger: random interleavings of grants, creates (some refused, some
idempotent replays), successes with random usage, failures, cancels, two workers ending the same
task at once, late duplicate reports and crashes midway through a transaction (then a fresh store
on the same SQLite file). After every step: each balance is the sum of its ledger and equals the
grants minus each task's final cost, and no task is closed twice."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reelgate.core import pricing
from reelgate.core.errors import Conflict, PaymentRequired
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Observation, Status, UpstreamState
from reelgate.core.pricing import PriceTable
from reelgate.core.request import VideoRequest
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.schema import ledger
from reelgate.store.sql import SqlStore, open_store
from reelgate.testing import ManualClock
from tests.integration.test_engine_queue import upstream

PRICE = 7_000_000  # per million tokens: mem-1's 64x64 frames are 4 tokens each
PRICES = PriceTable.parse({"mem-1": {"per_million_tokens": PRICE}})


def estimate(duration: int) -> int:
    return pricing.ceil_div(pricing.ceil_div(64 * 64 * (24 * duration + 1), 1024) * PRICE, 10**6)


class Crash(Exception):
    """A process dying in the middle of a transaction."""


@dataclass
class World:
    """Two stores ("workers") on one SQLite file, and what the ledger must say."""

    path: Path
    clock: ManualClock = field(default_factory=ManualClock)
    stores: list[SqlStore] = field(default_factory=list)
    services: list[VideoService] = field(default_factory=list)
    crash_on: str | None = None
    owners: list[ApiToken] = field(default_factory=list)
    grants: dict[str, int] = field(default_factory=dict)
    # task id -> (owner id, estimate, final cost or None while unfinished)
    tasks: dict[str, tuple[str, int, int | None]] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)

    async def open(self) -> None:
        self.stores = [await open_store(f"sqlite:///{self.path}") for _ in range(2)]
        for store in self.stores:
            sa.event.listen(store._engine.sync_engine, "before_cursor_execute", self._maybe_crash)
        self.services = [
            VideoService(s, Registry([upstream(self.clock)]), prices=PRICES, clock=self.clock)
            for s in self.stores
        ]

    async def close(self) -> None:
        for store in self.stores:
            await store.close()

    def _maybe_crash(self, *args: Any) -> None:
        statement = str(args[2])
        if self.crash_on is not None and statement.startswith(f"INSERT INTO {self.crash_on}"):
            self.crash_on = None
            raise Crash(statement)

    def owed(self, owner_id: str) -> int:
        return self.grants[owner_id] - sum(
            cost if cost is not None else held
            for who, held, cost in self.tasks.values()
            if who == owner_id
        )


CREATE = st.tuples(
    st.just("create"),
    st.integers(0, 1),
    st.integers(1, 5),
    st.sampled_from([None, None, "a", "b"]),
    st.integers(0, 4).map(lambda n: n == 0),  # crash midway, one time in five
)
END = st.tuples(
    st.just("end"),
    st.integers(0, 50),
    st.sampled_from(["success", "failure", "cancel"]),
    st.one_of(st.none(), st.integers(0, 2000)),  # usage tokens reported
    st.sampled_from(["once", "race", "race-mixed", "late", "crash"]),
)
OPS = st.one_of(
    st.tuples(st.just("grant"), st.integers(0, 1), st.integers(0, 3000)), CREATE, CREATE, END, END
)


async def create(w: World, op: tuple[Any, ...]) -> None:
    _, who, duration, key, crash = op
    owner = w.owners[who]
    request = VideoRequest(model="mem-1", prompt="a cat", duration=duration)
    cost = estimate(duration)
    replay = w.keys.get((owner.id, key)) if key else None
    if replay is not None:
        expected = "replay" if replay[0] == duration else "conflict"
    elif owner.quota_limited and w.owed(owner.id) < cost:
        expected = "refused"
    else:
        expected = "crash" if crash else "created"
    w.crash_on = "tasks" if crash else None  # after the pre-charge was written
    try:
        task = await w.services[0].create(owner, request, idempotency_key=key)
        outcome = "replay" if replay is not None else "created"
    except Crash:
        outcome = "crash"
        await w.close()
        await w.open()  # a fresh process: nothing of the dead transaction remains
    except PaymentRequired:
        outcome = "refused"
    except Conflict:
        outcome = "conflict"
    w.crash_on = None
    event(f"create: {outcome}")
    assert outcome == expected
    if outcome == "replay":
        assert replay is not None
        assert task.id == replay[1]
    elif outcome == "created":
        w.tasks[task.id] = (owner.id, cost, None)
        if key:
            w.keys[(owner.id, key)] = (duration, task.id)


async def end(w: World, op: tuple[Any, ...]) -> None:
    _, pick, how, usage, mode = op
    open_ids = [t for t, (_, _, cost) in w.tasks.items() if cost is None]
    if not open_ids:
        return
    task_id = open_ids[pick % len(open_ids)]
    stale = await w.stores[0].find_task(task_id)
    assert stale is not None
    assert not stale.status.terminal
    seen = Observation(UpstreamState.SUCCEEDED, video_url="https://x/v.mp4", usage_tokens=usage)
    a, b = w.services

    async def finish(service: VideoService, kind: str) -> None:
        if kind == "success":
            await service.observe(stale, seen, w.clock() + 5)
        elif kind == "failure":
            await service.fail(stale, "upstream_failed", "boom")
        else:
            owner = next(o for o in w.owners if o.id == stale.owner_id)
            await service.cancel(owner, task_id)

    if mode == "crash":
        w.crash_on = "ledger"  # after the task's end was written, before its settlement
        with pytest.raises(Crash):
            await finish(a, how)
        await w.close()
        await w.open()
    elif mode in ("race", "race-mixed"):
        # Two workers end the task at once (a cancel races the engine in the "late" mode).
        how = "failure" if how == "cancel" else how
        other = "failure" if mode == "race-mixed" and how == "success" else how
        await asyncio.gather(finish(a, how), finish(b, other))
    else:
        await finish(a, how)
        if mode == "late":  # a duplicate report from a worker holding the old version
            await b.observe(stale, seen, w.clock() + 5)
            await b.fail(stale, "expired", "late")
    now = await w.stores[0].find_task(task_id)
    assert now is not None
    event(f"end: {how} {mode} -> {now.status.value}")
    assert now.status.terminal is (mode != "crash")  # a crash leaves no end without its charge
    if now.status.terminal:
        owner_id, held, _ = w.tasks[task_id]
        final = (
            (
                held
                if now.usage_tokens is None
                else pricing.ceil_div(now.usage_tokens * PRICE, 10**6)
            )
            if now.status is Status.SUCCESS
            else 0
        )
        w.tasks[task_id] = (owner_id, held, final)


async def check(w: World) -> None:
    store = w.stores[1]
    async with store._engine.connect() as conn:
        rows = (await conn.execute(sa.select(ledger))).all()
    closings: dict[str, int] = {}
    for row in rows:
        if row.kind in ("settle", "refund"):
            closings[row.task_id] = closings.get(row.task_id, 0) + 1
    assert all(n == 1 for n in closings.values())  # no task closed twice
    assert set(closings) == {t for t, (_, _, cost) in w.tasks.items() if cost is not None}
    for owner in w.owners:
        summed = sum(r.amount for r in rows if r.owner_id == owner.id)
        balance = await store.balance(owner.id)
        assert balance.amount == summed == w.owed(owner.id)


async def run(path: Path, ops: list[tuple[Any, ...]]) -> None:
    w = World(path)
    await w.open()
    try:
        for limited in (True, False):
            owner, _ = await w.services[0].create_token("t")
            if limited:
                found = await w.stores[0].change_quota(owner.id, w.clock(), grant=1500)
                assert found is not None
                owner = found[0]
            w.owners.append(owner)
            w.grants[owner.id] = 1500 if limited else 0
        for op in ops:
            if op[0] == "grant":
                owner = w.owners[op[1]]
                await w.stores[1].change_quota(
                    owner.id, w.clock(), grant=op[2], limited=owner.quota_limited
                )
                w.grants[owner.id] += op[2]
            elif op[0] == "create":
                await create(w, op)
            else:
                await end(w, op)
            w.clock.advance(1)
            await check(w)
    finally:
        await w.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file, copied for every example."""
    path = tmp_path_factory.mktemp("ledger") / "template.db"

    async def migrate() -> None:
        store = await open_store(f"sqlite:///{path}")
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(migrate())
    return path


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=40))
def test_ledger_sums_equal_balances_and_no_task_is_settled_twice(
    template: Path, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    path = tmp_path_factory.mktemp("example") / "ledger.db"
    shutil.copy(template, path)
    asyncio.run(run(path, ops))
