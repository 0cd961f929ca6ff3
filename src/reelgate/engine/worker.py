"""The engine: admit and submit new tasks, look up submitted ones in batches, end overdue ones.

One worker per process; any number of workers may share a PostgreSQL database. Every task a
worker touches is leased (``lease_owner``/``lease_until``, ``FOR UPDATE SKIP LOCKED``), so a
crashed worker's tasks come back once its lease runs out, and no two workers look at a task at
once. On SQLite run one worker process.

A worker runs two loops, each round followed by a wait for a wake-up (a create, a callback) or
for the next look to fall due: tracking (1 and 3 below) and admission (2), so that neither
waits for the other's upstream calls. ``tick`` runs one round of both:

1. **Sweep** (every few seconds): unfinished tasks past their deadline end as ``timeout``.
2. **Admit**: per provider account, as many of the oldest unsubmitted tasks as its caps allow
   (``AdmissionCaps``) are submitted; the rest wait in reelgate's queue, in order. A task whose
   earlier attempt may have reached the upstream is reconciled before it is sent again.
3. **Track**: due tasks grouped by (provider, account), one batch look-up per group, transitions
   applied through the service; the next look follows ``schedule.TRACKING``.

Each upstream call first takes a token from the account's shared bucket when it has an RPM limit.
Admission (2) and the state both loops share live in ``engine/admission.py``.

A fault is contained where it happens (``engine/supervisor.py``): an exception while handling one
task is logged with its traceback, the task is retried after a back-off and finally ended with
``internal_error``; a batch look-up that raises is split until the task that makes it raise is
found; a failed round (the database away) backs off; a loop that stops anyway is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from reelgate import logs
from reelgate.core import schedule
from reelgate.core.errors import (
    IllegalTransition,
    ReelgateError,
)
from reelgate.core.lifecycle import Observation, Status, Task, UpstreamState
from reelgate.engine.admission import SUBMIT_CONCURRENCY, Admission
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.failover import Failover
from reelgate.engine.supervisor import (
    LOOPS,
    FaultCounter,
    Pause,
    RoundFailures,
    log_fault,
    pause,
    settle_all,
    supervise,
    unavailable,
)
from reelgate.metrics import METRICS
from reelgate.providers.base import Provider
from reelgate.service import VideoService

log = logging.getLogger("reelgate.engine")
T = TypeVar("T")

SWEEP_INTERVAL = 5.0
# How often channels disabled by their health are checked for a due probe (s).
PROBE_CHECK_INTERVAL = 10.0
# The shortest wait between two idle rounds (wall seconds).
MIN_WAIT = 0.002
# Extra look-ups a batch that raised may cost while it is split to find the task that makes it
# raise (one such task in 500 takes about 2·log2(500) = 18).
SPLIT_LOOKS = 32


class Worker(Admission):
    def __init__(
        self,
        service: VideoService,
        *,
        batch_size: int = 500,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.5,
        callbacks: CallbackUrls | None = None,
        tracking: schedule.TrackingSchedule = schedule.TRACKING,
        typical_defaults: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        clock_rate: float = 1.0,
        pause_for: Pause | None = None,
    ) -> None:
        self.service = service
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.callbacks = callbacks
        self.tracking = tracking
        self._rng = rng or random.Random()  # noqa: S311 - scheduling jitter
        self._clock = clock or service.clock
        # Clock seconds per wall second: 1, but for benchmarks that compress time.
        self.clock_rate = clock_rate
        self._next_sweep = 0.0
        # Per provider: the expected duration until the model's own is learned.
        self._typical_defaults = dict(typical_defaults or {})
        self._typical: dict[tuple[str, str], float] = {}
        self._typical_at = float("-inf")
        self._submit_slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)
        self.failover = Failover(service, self._clock, self._rng)
        self._next_probe = 0.0
        # How the loops wait after a failure (tests pass one that only records the waits).
        self._pause = pause_for or pause
        self._faults = FaultCounter()
        self._orphans = {"tracking": set(), "admission": set()}

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, finish the rounds under way, then give back every lease.

        Two loops share the worker: tracking (sweep, channels, look-ups) and admission
        (submissions), so that a slow create (up to the upstream's timeout) never holds back
        the look-ups that confirm callbacks, nor the other way round."""
        log.info("worker %s started", self.id)
        heartbeat = asyncio.create_task(self._supervised("heartbeat", None, self._heartbeat))
        try:
            async with asyncio.TaskGroup() as loops:
                for name, round_, wait in (
                    ("tracking", self._tracking_round, self.idle_wait),
                    ("admission", self.admit, self._admission_wait),
                ):
                    loops.create_task(
                        self._supervised(
                            name, stop, functools.partial(self._loop, stop, name, round_, wait)
                        )
                    )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                await self.service.flush_learning()
                await self.service.store.release_leases(self.id)
                await self.service.store.worker_gone(self.id)
            except Exception as exc:  # the leases run out by themselves
                log.error("cannot give back the leases of %s (%s)", self.id, type(exc).__name__)
            log.info("worker %s stopped", self.id)

    def _supervised(
        self, name: str, stop: asyncio.Event | None, body: Callable[[], Awaitable[None]]
    ) -> Coroutine[Any, Any, None]:
        return supervise(
            name, body, stop, owner=self.id, clock=self._clock, rng=self._rng, wait=self._pause
        )

    async def _loop(
        self,
        stop: asyncio.Event,
        name: str,
        round_: Callable[[], Awaitable[int]],
        wait: Callable[[], Awaitable[float]],
    ) -> None:
        signal = self.service.work_available
        failures = RoundFailures(name, rng=self._rng)
        while not stop.is_set():
            # Work signalled during the round starts the next one at once.
            seen = signal.generation
            try:
                handled = await round_()
            except Exception as exc:  # the store is away, or a bug outside any one task
                await self._pause(failures.failed(exc), stop)
                continue
            failures.succeeded()
            if handled >= self.batch_size:
                continue  # more work is probably due right now
            timeout = await wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), signal.wait(seen)), timeout)

    async def _admission_wait(self) -> float:
        return self.poll_interval

    async def idle_wait(self) -> float:
        """How long to wait (wall seconds) for work before the next round: until the earliest
        look falls due (a callback's confirmation, a scheduled look), at most ``poll_interval``.
        Submissions wake the worker at once; the interval bounds how late rate-limited and
        retried ones, and other processes' work on SQLite, are seen."""
        try:
            due = await self.service.store.next_due(self._clock())
        except ReelgateError:
            return self.poll_interval
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(MIN_WAIT, (due - self._clock()) / self.clock_rate))

    async def announce(self) -> None:
        """Report this worker alive now, before its loops start: a gateway that starts
        serving is ready from its first request, not from the heartbeat task's first turn."""
        await self.service.store.worker_seen(self.id, self._clock())

    async def _heartbeat(self) -> None:
        """Keep this worker's leases alive while a round outlasts them (slow upstream calls,
        submissions waiting for a slot): only a dead worker's tasks may be taken over."""
        while True:
            now = self._clock()
            try:
                await self.service.store.extend_leases(self.id, now, now + self.lease_seconds)
                if not LOOPS.problems(now, owner=self.id):
                    # Readiness: alive, and neither loop is down or restarting again and again
                    # (seen from other processes once this report goes stale).
                    await self.service.store.worker_seen(self.id, now)
            except ReelgateError as exc:
                log.error("cannot extend leases: %s", exc.message)
            await asyncio.sleep(self.lease_seconds / 3)

    async def tick(self) -> int:
        """One round of both loops at once (sweep and channels first). Returns how many tasks
        it handled. ``run`` repeats the two loops independently; tests call this."""
        handled = await self._upkeep()
        admitted, tracked = await asyncio.gather(self.admit(), self.track())
        return handled + admitted + tracked

    async def _tracking_round(self) -> int:
        handled = await self._upkeep()
        return handled + await self.track()

    async def _upkeep(self) -> int:
        """Deadlines every few seconds; channels changed elsewhere; due health probes. A bug in
        one of them is logged and does not hold back the look-ups."""
        handled = 0
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            handled += await self._guarded("sweeper", self.sweep, 0)
        book = self.service.channels
        if book is not None:
            # Channels added, changed or disabled by other processes.
            await self._guarded("channels", book.refresh, None)
            if now >= self._next_probe:
                self._next_probe = now + PROBE_CHECK_INTERVAL
                await self._guarded("channels", book.probe_due, 0)
        return handled

    async def _guarded(self, loop: str, step: Callable[[], Awaitable[T]], otherwise: T) -> T:
        try:
            return await step()
        except Exception as exc:
            if unavailable(exc):
                raise  # the store is away: the round fails and backs off
            log_fault(loop, f"the {loop} step", exc, 1, 1, SWEEP_INTERVAL)
            return otherwise

    # -- 1. deadlines ------------------------------------------------------------------------------
    async def sweep(self) -> int:
        await self._give_back("tracking")
        overdue = await self.service.store.claim_overdue(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        try:
            for task in overdue:
                await self._unit("sweeper", task, functools.partial(self._end_overdue, task))
        except BaseException:
            self._orphan("tracking", overdue)
            raise
        return len(overdue)

    async def _end_overdue(self, task: Task) -> None:
        provider = self.service.registry.account(task.provider, task.account)
        if provider is not None and task.upstream_id and task.status is Status.QUEUED:
            # Still waiting upstream: withdraw it so it is not run (and billed) for nothing.
            try:
                await provider.cancel(task.upstream_id)
            except ReelgateError:
                pass  # it may have started meanwhile; the task ends here either way
            except Exception as exc:  # the provider's bug: logged, and the task still ends
                log_fault("sweeper", f"cancel of {task.id}", exc, 1, 1, None)
        where = "upstream" if task.upstream_id else "in reelgate's queue"
        await self.service.fail(
            task, "timeout", f"the task did not finish before its deadline (it was {where})"
        )

    # -- 3. tracking -------------------------------------------------------------------------------
    async def track(self) -> int:
        await self._give_back("tracking")
        claimed = await self.service.store.claim_due(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        groups: dict[tuple[str, str | None], list[Task]] = defaultdict(list)
        for task in claimed:
            groups[(task.provider, task.account)].append(task)
        try:
            await settle_all(self._look(key, ts) for key, ts in groups.items())
        except BaseException:
            self._orphan("tracking", claimed)
            raise
        await self.service.flush_learning()
        return len(claimed)

    async def _look(self, key: tuple[str, str | None], tasks: Sequence[Task]) -> None:
        provider = self.service.registry.account(*key)
        if provider is None:
            gone = f"provider '{key[0]}' (account '{key[1]}') is no longer configured"
            for task in tasks:
                await self._unit(
                    "tracking",
                    task,
                    functools.partial(self.service.fail, task, "provider_unavailable", gone),
                )
            return
        await self._look_up(provider, key, tasks, [SPLIT_LOOKS])

    async def _look_up(
        self,
        provider: Provider,
        key: tuple[str, str | None],
        tasks: Sequence[Task],
        spare: list[int],
    ) -> None:
        """One batch look-up, its results applied task by task. A look-up that raises (not an
        upstream error: a bug, an answer the provider cannot read) is tried again in halves,
        up to ``spare[0]`` more calls, so that only the tasks that make it raise take a fault."""
        if await self._budget(provider, 1) <= 0:
            wait = self._clock() + self._rate_wait(provider)
            for task in tasks:
                await self.service.reschedule(task, wait)
            return
        try:
            seen = await provider.fetch_many([t.upstream_id or "" for t in tasks])
        except ReelgateError as exc:
            log.warning("look-up at %s/%s failed (%s)", key[0], key[1], exc.code)
            for task in tasks:
                delay = exc.retry_after or schedule.LOOKUP_RETRY.delay(
                    task.missing_looks, self._rng
                )
                await self.service.reschedule(task, self._clock() + delay, polled=True)
            return
        except Exception as exc:
            if len(tasks) > 1 and spare[0] >= 2:
                log.warning(
                    "a look-up of %d tasks at %s/%s raised %s; looking again in halves",
                    len(tasks),
                    key[0],
                    key[1],
                    type(exc).__name__,
                )
                spare[0] -= 2
                half = len(tasks) // 2
                for part in (tasks[:half], tasks[half:]):
                    await self._look_up(provider, key, part, spare)
                return
            if len(tasks) > 1:  # the trace once, then one line per task
                log.error(
                    "a look-up of %d tasks at %s/%s raised %s; each of them takes a fault",
                    len(tasks),
                    key[0],
                    key[1],
                    type(exc).__name__,
                    exc_info=exc,
                )
            for task in tasks:
                with logs.bound(task_id=task.id, request_id=task.request_id):
                    await self._fault("tracking", task, exc, trace=len(tasks) == 1)
            return
        for task in tasks:
            await self._apply(task, seen)

    async def _apply(self, task: Task, seen: Mapping[str, Observation | None]) -> None:
        if await self._unit("tracking", task, functools.partial(self._apply_one, task, seen)):
            self._faults.clear(task.id)

    async def _apply_one(self, task: Task, seen: Mapping[str, Observation | None]) -> None:
        now = self._clock()
        next_at = self.tracking.next_look(
            now,
            submitted_at=task.submitted_at or float(task.submit_time),
            looks=task.poll_attempts + 1,
            typical=await self._typical_of(task),
            callbacks=self.callbacks is not None,
            rng=self._rng,
        )
        upstream_id = task.upstream_id or ""
        if upstream_id in seen and seen[upstream_id] is None:
            await self.service.reschedule(task, next_at, polled=True)  # unreadable: retry
            return
        observation = seen.get(upstream_id)
        if observation is None:
            if task.missing_looks + 1 >= schedule.MAX_MISSING_LOOKS:
                await self.service.fail(
                    task, "upstream_lost", "the upstream no longer knows this task"
                )
            else:
                retry = now + schedule.LOOKUP_RETRY.delay(task.missing_looks, self._rng)
                await self.service.reschedule(task, retry, polled=True, missing=True)
            return
        finished = observation.extra.get("updated_at")
        if (
            observation.state is not UpstreamState.QUEUED
            and observation.state is not UpstreamState.RUNNING
            and isinstance(finished, int | float)
        ):
            METRICS.staleness.labels(task.provider).observe(max(0.0, now - float(finished)))
        try:
            await self.service.observe(task, observation, next_at)
        except IllegalTransition as exc:
            log.error("ignored upstream report for %s: %s", task.id, exc.message)
            await self.service.reschedule(task, next_at, polled=True)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    waiters = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
