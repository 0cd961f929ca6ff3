"""One watcher per task: reads per interval or per change, never per waiter; deadlines kept
whatever the reads do. An injected timer: no real waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
from collections.abc import Callable

import pytest

from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.lifecycle import Status, Task
from reelgate.service.watch import TaskWatchers
from reelgate.store.sql_base import StoreError
from tests.unit.test_lifecycle import make_task

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimer:
    """Time that moves only when a test says so; callbacks run in order as it passes them."""

    def __init__(self) -> None:
        self.t = 0.0
        self._due: list[tuple[float, int, Callable[[], None], _Handle]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle()
        heapq.heappush(self._due, (when, next(self._order), callback, handle))
        return handle

    async def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while self._due and self._due[0][0] <= end:
            when, _, callback, handle = heapq.heappop(self._due)
            self.t = max(self.t, when)
            if not handle.cancelled:
                callback()
                await settle()
        self.t = end
        await settle()


async def settle() -> None:
    """Let every runnable coroutine run until it waits again."""
    for _ in range(20):
        await asyncio.sleep(0)


@dataclasses.dataclass
class Store:
    """The task as stored, and how often it was read."""

    task: Task = dataclasses.field(default_factory=lambda: make_task(version=2))
    reads: int = 0
    held: Task | None = None  # a newer copy this process wrote
    error: ReelgateError | None = None
    gate: asyncio.Event | None = None  # reads wait for it

    async def read(self, owner_id: str, task_id: str) -> Task:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.task

    def cached(self, owner_id: str, task_id: str) -> Task | None:
        return self.held

    def change(self, **fields: object) -> Task:
        self.task = dataclasses.replace(self.task, version=self.task.version + 1, **fields)
        return self.task


def watchers(store: Store, timer: ManualTimer) -> TaskWatchers:
    return TaskWatchers(store.read, store.cached, recheck=lambda: 1.0, timer=timer)


def newer(version: int) -> Callable[[Task], bool]:
    return lambda t: t.version > version


async def test_a_thousand_waiters_cost_one_read_per_interval() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    waits = [asyncio.ensure_future(watch.wait(store.task, newer(2), 30)) for _ in range(1000)]
    await settle()
    await timer.advance(10)
    assert store.reads == 10  # one per second for the task, not one per waiter
    assert not any(w.done() for w in waits)
    # A change nobody announced: the next look sees it, and answers everyone with that one read.
    store.change(status=Status.IN_PROGRESS)
    await timer.advance(1)
    assert store.reads == 11
    assert all(w.done() and w.result().status is Status.IN_PROGRESS for w in waits)
    assert watch.watching() == 0  # the last waiter ended the watcher
    await timer.advance(10)
    assert store.reads == 11


async def test_an_announced_change_is_read_once_at_once() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    waits = [asyncio.ensure_future(watch.wait(store.task, newer(2), 30)) for _ in range(100)]
    await settle()
    store.change()
    watch.wake("task_x")  # a notification from another process
    await settle()
    assert store.reads == 1
    assert all(w.done() and w.result().version == 3 for w in waits)


async def test_this_processs_own_writes_need_no_read() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    waits = [asyncio.ensure_future(watch.wait(store.task, newer(2), 30)) for _ in range(100)]
    await settle()
    store.held = store.change()  # written here: the service's cache holds it already
    watch.wake("task_x")
    await settle()
    assert store.reads == 0
    assert all(w.done() and w.result() is store.held for w in waits)


async def test_a_wait_ends_at_its_deadline_even_when_reads_hang() -> None:
    store, timer = Store(gate=asyncio.Event()), ManualTimer()  # the store answers nothing
    watch = watchers(store, timer)
    short = asyncio.ensure_future(watch.wait(store.task, newer(2), 5))
    long = asyncio.ensure_future(watch.wait(store.task, newer(2), 30))
    await settle()
    await timer.advance(4.99)
    assert not short.done()
    await timer.advance(0.01)
    assert short.done()
    assert short.result().version == 2
    assert store.reads == 1  # the first look still hangs; no pile of reads behind it
    await timer.advance(25)
    assert long.done()
    assert store.gate is not None
    store.gate.set()
    await settle()
    assert watch.watching() == 0


async def test_waiters_with_different_wishes_share_the_watcher() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    any_change = asyncio.ensure_future(watch.wait(store.task, newer(2), 30))
    running = asyncio.ensure_future(
        watch.wait(store.task, lambda t: t.status is not Status.QUEUED, 30)
    )
    await settle()
    store.change(upstream_id="up-1")
    watch.wake("task_x")
    await settle()
    assert any_change.done()
    assert not running.done()
    store.change(status=Status.SUCCESS)  # terminal: everyone is answered
    watch.wake("task_x")
    await settle()
    assert running.done()
    assert running.result().status is Status.SUCCESS
    assert store.reads == 2


async def test_a_task_that_is_gone_ends_every_wait() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    waits = [asyncio.ensure_future(watch.wait(store.task, newer(2), 30)) for _ in range(3)]
    await settle()
    store.error = NotFound("gone", code="task_not_found")
    await timer.advance(1)
    for w in waits:
        with pytest.raises(NotFound):
            w.result()
    assert watch.watching() == 0


async def test_a_read_that_fails_for_a_moment_fails_no_waiter() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    waits = [asyncio.ensure_future(watch.wait(store.task, newer(2), 30)) for _ in range(3)]
    await settle()
    store.error = StoreError("the database is locked")
    await timer.advance(2)
    assert not any(w.done() for w in waits)
    store.error = None
    store.change()
    await timer.advance(1)
    assert all(w.done() and w.result().version == 3 for w in waits)


async def test_a_waiter_that_goes_away_leaves_the_others_waiting() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    gone = asyncio.ensure_future(watch.wait(store.task, newer(2), 30))
    stays = asyncio.ensure_future(watch.wait(store.task, newer(2), 30))
    await settle()
    gone.cancel()  # the client disconnected
    await settle()
    assert watch.watching() == 1
    stays.cancel()
    await settle()
    assert watch.watching() == 0
    await timer.advance(5)
    assert store.reads == 0


async def test_each_waiter_gets_the_value_that_answered_it() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    running = asyncio.ensure_future(
        watch.wait(store.task, lambda t: t.status is not Status.QUEUED, 30)
    )
    await settle()
    store.held = store.change(status=Status.IN_PROGRESS)
    watch.wake("task_x")
    store.held = store.change(status=Status.SUCCESS)  # before the waiter could run again
    watch.wake("task_x")
    await settle()
    assert running.result().status is Status.IN_PROGRESS  # an event stream shows both


async def test_a_newer_copy_than_the_watchers_answers_at_once() -> None:
    store, timer = Store(), ManualTimer()
    watch = watchers(store, timer)
    first = asyncio.ensure_future(watch.wait(store.task, newer(2), 30))
    await settle()
    late = store.change()
    assert await watch.wait(late, newer(2), 30) is late  # the caller already holds a newer one
    await settle()
    assert first.done()
    assert first.result() is late
