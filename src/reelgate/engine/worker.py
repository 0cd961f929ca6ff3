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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

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
from reelgate.metrics import METRICS
from reelgate.service import VideoService

log = logging.getLogger("reelgate.engine")

SWEEP_INTERVAL = 5.0
# How often channels disabled by their health are checked for a due probe (s).
PROBE_CHECK_INTERVAL = 10.0
# The shortest wait between two idle rounds (wall seconds).
MIN_WAIT = 0.002


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

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, finish the rounds under way, then give back every lease.

        Two loops share the worker: tracking (sweep, channels, look-ups) and admission
        (submissions), so that a slow create (up to the upstream's timeout) never holds back
        the look-ups that confirm callbacks, nor the other way round."""
        log.info("worker %s started", self.id)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            async with asyncio.TaskGroup() as loops:
                loops.create_task(self._loop(stop, self._tracking_round, self.idle_wait))
                loops.create_task(self._loop(stop, self.admit, self._admission_wait))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(ReelgateError):
                await self.service.flush_learning()
            with contextlib.suppress(ReelgateError):
                await self.service.store.release_leases(self.id)
                await self.service.store.worker_gone(self.id)
            log.info("worker %s stopped", self.id)

    async def _loop(
        self,
        stop: asyncio.Event,
        round_: Callable[[], Awaitable[int]],
        wait: Callable[[], Awaitable[float]],
    ) -> None:
        signal = self.service.work_available
        while not stop.is_set():
            # Work signalled during the round starts the next one at once.
            seen = signal.generation
            try:
                handled = await round_()
            except ReelgateError as exc:  # store down, etc.: keep going, loudly
                log.error("worker round failed: %s", exc.message)
                handled = 0
            if handled >= self.batch_size:
                continue  # more work is probably due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop.wait(), signal.wait(seen)), await wait())

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
                await self.service.store.worker_seen(self.id, now)  # readiness: alive
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
        """Deadlines every few seconds; channels changed elsewhere; due health probes."""
        handled = 0
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            handled += await self.sweep()
        book = self.service.channels
        if book is not None:
            await book.refresh()  # channels added, changed or disabled by other processes
            if now >= self._next_probe:
                self._next_probe = now + PROBE_CHECK_INTERVAL
                await book.probe_due()
        return handled

    # -- 1. deadlines ------------------------------------------------------------------------------
    async def sweep(self) -> int:
        overdue = await self.service.store.claim_overdue(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        for task in overdue:
            provider = self.service.registry.account(task.provider, task.account)
            if provider is not None and task.upstream_id and task.status is Status.QUEUED:
                # Still waiting upstream: withdraw it so it is not run (and billed) for nothing.
                with contextlib.suppress(ReelgateError):
                    await provider.cancel(task.upstream_id)
            where = "upstream" if task.upstream_id else "in reelgate's queue"
            await self.service.fail(
                task, "timeout", f"the task did not finish before its deadline (it was {where})"
            )
        return len(overdue)

    # -- 3. tracking -------------------------------------------------------------------------------
    async def track(self) -> int:
        claimed = await self.service.store.claim_due(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        groups: dict[tuple[str, str | None], list[Task]] = defaultdict(list)
        for task in claimed:
            groups[(task.provider, task.account)].append(task)
        await asyncio.gather(*(self._look(key, ts) for key, ts in groups.items()))
        await self.service.flush_learning()
        return len(claimed)

    async def _look(self, key: tuple[str, str | None], tasks: Sequence[Task]) -> None:
        provider = self.service.registry.account(*key)
        if provider is None:
            for task in tasks:
                await self.service.fail(
                    task,
                    "provider_unavailable",
                    f"provider '{key[0]}' (account '{key[1]}') is no longer configured",
                )
            return
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
        for task in tasks:
            await self._apply(task, seen)

    async def _apply(self, task: Task, seen: Mapping[str, Observation | None]) -> None:
        with logs.bound(task_id=task.id, request_id=task.request_id):
            await self._apply_one(task, seen)

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
