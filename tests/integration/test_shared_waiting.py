"""Long-polls and event streams on one task share its watcher: on a real SQLite store, hundreds of
waiters cost the store one read per interval (or per change), and all of them hear of a change
made by another process. An injected timer for the waits: no real waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reelgate.core.lifecycle import Status, Task
from reelgate.engine.worker import Worker
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from tests.integration.test_engine import owner
from tests.integration.test_engine_queue import engine, request, upstream
from tests.unit.test_watch import ManualTimer, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingStore:
    """The store, counting the task reads made through it."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.reads = 0

    async def get_task(self, owner_id: str, task_id: str) -> Task | None:
        self.reads += 1
        return await self.inner.get_task(owner_id, task_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_many_waiters_on_one_task_cost_one_read_per_interval(store: SqlStore) -> None:
    clock, timer = ManualClock(), ManualTimer()
    up = upstream(clock, queued=5, running=100)
    counted = CountingStore(store)
    service = VideoService(
        counted,  # type: ignore[arg-type]
        Registry([up]),
        clock=clock,
        monotonic=clock,
        timer=timer,
    )
    worker = Worker(service, clock=clock)
    _, elsewhere = engine(store, up, clock=clock)  # another process: it cannot notify this one
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()  # submitted upstream, still queued
    submitted = await service.get(me, task.id)
    before = counted.reads
    polls = [
        asyncio.ensure_future(service.wait_status(me, task.id, submitted.version, 30))
        for _ in range(300)
    ]
    changes = [
        asyncio.ensure_future(service.wait_change(me, task.id, submitted.version, 30))
        for _ in range(100)
    ]
    await settle()
    for _ in range(10):
        await timer.advance(1)
        await asyncio.sleep(0.01)  # (the store's own thread answers in real time)
    assert counted.reads - before == 10  # one per second for the task, not 4000
    assert not any(w.done() for w in polls + changes)
    clock.advance(40)
    await elsewhere.tick()  # running now, written by the other process
    await timer.advance(1)
    for _ in range(50):
        await asyncio.sleep(0.01)
        if all(w.done() for w in polls + changes):
            break
    assert counted.reads - before == 11
    assert {w.result().status for w in polls + changes} == {Status.IN_PROGRESS}
    assert service.watchers.watching() == 0


async def test_a_long_poll_answers_at_its_deadline(store: SqlStore) -> None:
    clock, timer = ManualClock(), ManualTimer()
    up = upstream(clock, queued=5, running=100)
    service = VideoService(store, Registry([up]), clock=clock, monotonic=clock, timer=timer)
    me = await owner(service)
    task = await service.create(me, request())
    waiting = asyncio.ensure_future(service.wait_status(me, task.id, task.version, 30))
    await settle()
    await timer.advance(29.9)
    assert not waiting.done()
    await timer.advance(0.1)
    await settle()
    assert waiting.done()
    assert waiting.result().status is Status.QUEUED
