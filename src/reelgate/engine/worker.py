"""The engine: admit and submit new tasks, look up submitted ones in batches, end overdue ones.

One worker per process; any number of workers may share a PostgreSQL database. Every task a
worker touches is leased (``lease_owner``/``lease_until``, ``FOR UPDATE SKIP LOCKED``), so a
crashed worker's tasks come back once its lease runs out, and no two workers look at a task at
once. On SQLite run one worker process.

A worker runs two loops, each round followed by a wait for a wake-up (a create, a callback) or
for the next look to fall due: tracking (1 and 3 below) and admission (2), so that neither
waits for the other's upstream calls. ``tick`` runs one round of both:

1. **Sweep** (every few seconds): unfinished tasks past their deadline end as ``timeout``.
2. **Admit**: per channel, as many of the oldest unsubmitted tasks as its caps allow
   (``AdmissionCaps``) are submitted; the rest wait in reelgate's queue, in order. A task whose
   earlier attempt may have reached the upstream is reconciled before it is sent again.
3. **Track**: due tasks grouped by (provider, channel), one batch look-up per group, transitions
   applied through the service; the next look follows ``schedule.TRACKING``.

Each upstream call first takes a token from the channel's shared bucket when it has an RPM limit.
Admission (2) and the state both loops share live in ``engine/admission.py``, the sweep (1) and
tracking (3) in ``engine/tracking.py``.

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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from reelgate.core import schedule
from reelgate.core.errors import ReelgateError
from reelgate.engine.admission import SUBMIT_CONCURRENCY, Admission
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.failover import Failover
from reelgate.engine.supervisor import (
    LOOPS,
    FaultCounter,
    Pause,
    RoundFailures,
    pause,
    supervise,
)
from reelgate.engine.tracking import Tracking
from reelgate.service import VideoService
from reelgate.store.base import RateBuckets, TaskQueue

log = logging.getLogger("reelgate.engine")

# The shortest wait between two idle rounds (wall seconds).
MIN_WAIT = 0.002


class Worker(Admission, Tracking):
    def __init__(
        self,
        service: VideoService,
        *,
        queue: TaskQueue | None = None,
        buckets: RateBuckets | None = None,
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
        """``queue`` and ``buckets``: the engine's ports to the task queue and the shared rate
        buckets (default: the service's store and buckets)."""
        self.service = service
        self.queue: TaskQueue = queue if queue is not None else service.store
        self.buckets: RateBuckets = buckets if buckets is not None else service.buckets
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
            for last in (self.service.flush_learning, self._leave):
                try:
                    await last()
                except Exception as exc:  # logged; the leases run out by themselves
                    log.error("worker %s: %s failed on stopping", self.id, type(exc).__name__)
            log.info("worker %s stopped", self.id)

    async def _leave(self) -> None:
        await self.queue.release_leases(self.id)
        await self.queue.worker_gone(self.id)

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
            due = await self.queue.next_due(self._clock())
        except ReelgateError:
            return self.poll_interval
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(MIN_WAIT, (due - self._clock()) / self.clock_rate))

    async def announce(self) -> None:
        """Report this worker alive now, before its loops start: a gateway that starts
        serving is ready from its first request, not from the heartbeat task's first turn."""
        await self.queue.worker_seen(self.id, self._clock())

    async def _heartbeat(self) -> None:
        """Keep this worker's leases alive while a round outlasts them (slow upstream calls,
        submissions waiting for a slot): only a dead worker's tasks may be taken over."""
        while True:
            now = self._clock()
            try:
                await self.queue.extend_leases(self.id, now, now + self.lease_seconds)
                if not LOOPS.problems(now, owner=self.id):
                    # Readiness: alive, and neither loop is down or restarting again and again
                    # (seen from other processes once this report goes stale).
                    await self.queue.worker_seen(self.id, now)
            except ReelgateError as exc:
                log.error("cannot extend leases: %s", exc.message)
            await asyncio.sleep(self.lease_seconds / 3)

    async def tick(self) -> int:
        """One round of both loops at once (sweep and channels first). Returns how many tasks
        it handled. ``run`` repeats the two loops independently; tests call this."""
        handled = await self._upkeep()
        admitted, tracked = await asyncio.gather(self.admit(), self.track())
        return handled + admitted + tracked


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    waiters = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
