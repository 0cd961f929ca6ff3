"""One watcher per waited-on task, shared by all its long-polls and event streams.

A waiter (``TaskWatchers.wait``) costs no read of its own: it registers a predicate and a
deadline, and is answered when the task's watcher publishes a value that satisfies it, or at its
deadline (a timer, so a wait never outlasts its time by more than the event loop's lag). The
watcher learns of changes from this process's writes and from PostgreSQL notifications
(``wake``), and otherwise re-reads the task every ``recheck`` seconds (a change made where no
notification comes from, e.g. a separate worker on SQLite): one read per change or per interval
for the task, whatever the number of waiters. The last waiter to leave ends its watcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.lifecycle import Task

log = logging.getLogger("reelgate.service")

Predicate = Callable[[Task], bool]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timer(Protocol):
    """Real time for waits (whatever clock tasks are stamped with): injectable for tests."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopTimer:
    """The running event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)


class _Waiter:
    __slots__ = ("answer", "ready")

    def __init__(self, ready: Predicate) -> None:
        self.ready = ready
        # The value that answered it (not a later one: an event stream shows every status).
        self.answer: asyncio.Future[Task] = asyncio.get_running_loop().create_future()

    def settle(self, task: Task) -> None:
        if not self.answer.done():
            self.answer.set_result(task)

    def fail(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


class _Watch:
    """What one task's watcher knows: its latest value and who waits for what."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.waiters: set[_Waiter] = set()
        self.dirty = False  # a change was announced: read before pausing again
        self.closing = False
        self.nudge: asyncio.Future[None] | None = None  # resolved to end the watcher's pause
        self.runner: asyncio.Future[None] | None = None

    def publish(self, task: Task) -> None:
        if task.version < self.task.version:
            return
        self.task = task
        for waiter in self.waiters:
            if waiter.ready(task) or task.status.terminal:
                waiter.settle(task)

    def poke(self) -> None:
        self.dirty = True
        if self.nudge is not None and not self.nudge.done():
            self.nudge.set_result(None)


class TaskWatchers:
    """The watchers of one process.

    ``read(owner_id, task_id)`` reads a task from the store (raising when it is gone);
    ``cached(owner_id, task_id)`` answers from memory when this process holds a newer copy, which
    is how its own writes reach the watcher without a read.
    """

    def __init__(
        self,
        read: Callable[[str, str], Awaitable[Task]],
        cached: Callable[[str, str], Task | None],
        *,
        recheck: Callable[[], float],
        timer: Timer | None = None,
    ) -> None:
        self._read = read
        self._cached = cached
        self._recheck = recheck
        self.timer: Timer = timer or LoopTimer()
        self._watches: dict[str, _Watch] = {}

    def watching(self) -> int:
        """Tasks watched now."""
        return len(self._watches)

    def wake(self, task_id: str) -> None:
        """The task may have changed: written here (the new value is in memory already, and
        goes to the waiters now: every value, none skipped) or elsewhere (the watcher reads)."""
        watch = self._watches.get(task_id)
        if watch is None:
            return
        held = self._cached(watch.task.owner_id, task_id)
        if held is not None and held.version > watch.task.version:
            watch.publish(held)
        else:
            watch.poke()

    async def wait(self, task: Task, ready: Predicate, seconds: float) -> Task:
        """The task once ``ready`` holds for it, or as it is after ``seconds``."""
        if ready(task) or task.status.terminal or seconds <= 0:
            held = self._watches.get(task.id)
            if held is not None:
                held.publish(task)  # others waiting may want this copy too
            return task
        watch = self._watch(task)
        if ready(watch.task) or watch.task.status.terminal:
            return watch.task
        waiter = _Waiter(ready)
        watch.waiters.add(waiter)
        deadline = self.timer.call_at(self.timer.now() + seconds, lambda: waiter.settle(watch.task))
        try:
            return await waiter.answer
        finally:
            deadline.cancel()
            watch.waiters.discard(waiter)
            if not watch.waiters:
                watch.closing = True
                watch.poke()  # the watcher sees it has no one left, and ends

    def _watch(self, task: Task) -> _Watch:
        watch = self._watches.get(task.id)
        if watch is None or watch.closing:
            watch = _Watch(task)
            self._watches[task.id] = watch
            watch.runner = asyncio.ensure_future(self._run(watch))
        else:
            watch.publish(task)  # the caller's copy may be newer than the watcher's
        return watch

    async def _run(self, watch: _Watch) -> None:
        try:
            while not watch.closing:
                if not watch.dirty:
                    await self._pause(watch)
                    if watch.closing:
                        break
                watch.dirty = False
                try:
                    watch.publish(await self._fresh(watch.task))
                except NotFound:
                    raise  # the task is gone (deleted): no use waiting for it
                except ReelgateError as exc:
                    # A store that fails for a moment must not fail every waiter at once: they
                    # keep the value they had, and the next look tries again.
                    log.warning("a waited-on task could not be read: %s", exc.message)
                if watch.task.status.terminal:
                    break  # every waiter was answered by that value
        except Exception as exc:  # handed to every waiter, who re-raise it
            for waiter in watch.waiters:
                waiter.fail(exc)
        finally:
            watch.closing = True
            if self._watches.get(watch.task.id) is watch:
                del self._watches[watch.task.id]

    async def _pause(self, watch: _Watch) -> None:
        """Until a change is announced or ``recheck`` seconds have passed."""
        nudge = watch.nudge = asyncio.get_running_loop().create_future()
        timeout = self.timer.call_at(self.timer.now() + self._recheck(), watch.poke)
        try:
            await nudge
        finally:
            timeout.cancel()
            watch.nudge = None

    async def _fresh(self, task: Task) -> Task:
        held = self._cached(task.owner_id, task.id)
        if held is not None and held.version > task.version:
            return held  # written (or read) by this process meanwhile: no read needed
        return await self._read(task.owner_id, task.id)
