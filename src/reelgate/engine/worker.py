"""The engine: admit and submit new tasks, look up submitted ones in batches, end overdue ones.

One loop per worker process; any number of workers may share a PostgreSQL database. Every task a
worker touches is leased (``lease_owner``/``lease_until``, ``FOR UPDATE SKIP LOCKED``), so a
crashed worker's tasks come back once its lease runs out, and no two workers look at a task at
once. On SQLite run one worker process.

A round (``tick``):

1. **Sweep** (every few seconds): unfinished tasks past their deadline end as ``timeout``.
2. **Admit**: per provider account, as many of the oldest unsubmitted tasks as its caps allow
   (``AdmissionCaps``) are submitted; the rest wait in reelgate's queue, in order. A task whose
   earlier attempt may have reached the upstream is reconciled before it is sent again.
3. **Track**: due tasks grouped by (provider, account), one batch look-up per group, transitions
   applied through the service; the next look follows ``schedule.TRACKING``.

Each upstream call first takes a token from the account's shared bucket when it has an RPM limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from reelgate import logs
from reelgate.core import schedule
from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.channels import ChannelState, admission_plan
from reelgate.core.errors import (
    IllegalTransition,
    ReelgateError,
)
from reelgate.core.lifecycle import Observation, Status, Task, UpstreamState
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.failover import Failover
from reelgate.metrics import METRICS
from reelgate.providers.base import Provider
from reelgate.service import VideoService

log = logging.getLogger("reelgate.engine")

SWEEP_INTERVAL = 5.0
# How often channels disabled by their health are checked for a due probe (s).
PROBE_CHECK_INTERVAL = 10.0
TYPICAL_REFRESH = 60.0
# Submissions in flight at once per worker.
SUBMIT_CONCURRENCY = 16


class Worker:
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
        self._next_sweep = 0.0
        # Per provider: the expected duration until the model's own is learned.
        self._typical_defaults = dict(typical_defaults or {})
        self._typical: dict[tuple[str, str], float] = {}
        self._typical_at = float("-inf")
        self._submit_slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)
        self.failover = Failover(service, self._clock, self._rng)
        self._next_probe = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, finish the round under way, then give back every lease."""
        log.info("worker %s started", self.id)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not stop.is_set():
                try:
                    handled = await self.tick()
                except ReelgateError as exc:  # store down, etc.: keep going, loudly
                    log.error("worker tick failed: %s", exc.message)
                    handled = 0
                if handled >= self.batch_size:
                    continue  # more work is probably due right now
                self.service.work_available.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(stop, self.service.work_available), self.poll_interval
                    )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(ReelgateError):
                await self.service.store.release_leases(self.id)
                await self.service.store.worker_gone(self.id)
            log.info("worker %s stopped", self.id)

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
        """One round: sweep, admit, track. Returns how many tasks it handled."""
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
        # Submitting a burst must not hold back look-ups (and callbacks' confirmations).
        admitted, tracked = await asyncio.gather(self.admit(), self.track())
        return handled + admitted + tracked

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

    # -- 2. admission and submission ---------------------------------------------------------------
    async def admit(self) -> int:
        handled = 0
        now = self._clock()
        registry = self.service.registry
        for name in list(registry.providers):
            waiting = await self.service.store.count_unsubmitted(name, now, self.batch_size)
            if not waiting:
                continue
            left = self.batch_size
            for planned, share in admission_plan(registry.channels(name), waiting, now, self._rng):
                # A submit earlier in this round may have disabled or cooled the channel.
                registry = self.service.registry
                channel = registry.channel(name, planned.name)
                provider = registry.account(name, planned.name)
                limit = left if share is None else min(share, left)
                if (
                    channel is None
                    or provider is None
                    or limit <= 0
                    or channel.state(now) is not ChannelState.ACTIVE
                ):
                    continue
                models = (
                    None
                    if channel.models is None
                    else sorted({registry.canonical(m) for m in channel.models})
                )
                claimed = await self.service.store.claim_admission(
                    name,
                    channel.name,
                    channel.caps,
                    now,
                    self.id,
                    self.lease_seconds,
                    limit,
                    models=models,
                )
                handled += len(claimed)
                left -= len(claimed)
                allowed = await self._budget(provider, len(claimed))
                for task in claimed[allowed:]:
                    # Over the account's request rate: back in the queue, untouched.
                    await self.service.reschedule(task, now + self._rate_wait(provider))
                await asyncio.gather(*(self._submit(provider, t, now) for t in claimed[:allowed]))
        return handled

    async def _submit(self, provider: Provider, claimed: Task, now: float) -> None:
        with logs.bound(task_id=claimed.id, request_id=claimed.request_id):
            await self._submit_one(provider, claimed, now)

    async def _submit_one(self, provider: Provider, claimed: Task, now: float) -> None:
        # An attempt that began before this claim may have reached the upstream.
        uncertain = claimed.submit_started_at is not None
        task = dataclasses.replace(
            claimed, account=provider.account, submit_started_at=claimed.submit_started_at or now
        )
        request = NormalizedRequest.from_json(task.request)
        async with self._submit_slots:
            start = self._clock()
            if not await self.service.store.hold(
                task.id, self.id, start, start + self.lease_seconds
            ):
                # The lease ran out while the task waited for a slot, and another worker may
                # have taken it: sending now could create it twice.
                log.warning("lost the lease on %s before submitting it; leaving it", task.id)
                return
            reconciling = uncertain
            try:
                upstream_id = None
                if uncertain:
                    assert task.submit_started_at is not None
                    upstream_id = await provider.reconcile(task.id, request, task.submit_started_at)
                    if upstream_id is not None:
                        log.warning(
                            "task %s was already created upstream as %s", task.id, upstream_id
                        )
                    elif await self.failover.release_after_reconcile(task):
                        return
                reconciling = False
                if upstream_id is None:
                    callback = (
                        self.callbacks.url(task.provider, task.id) if self.callbacks else None
                    )
                    upstream_id = await provider.submit(task.id, request, callback_url=callback)
            except ReelgateError as exc:
                await self._submit_failed(task, exc, in_doubt=reconciling)
                return
        submitted = self._clock()
        expires = request.options.get("execution_expires_after")
        deadline = schedule.deadline(
            task.submit_time,
            max_task_seconds=self.service.max_task_seconds,
            submitted_at=submitted,
            expires_after=float(expires) if isinstance(expires, int | float) else None,
        )
        await self.service.mark_submitted(
            task,
            upstream_id,
            self.tracking.next_look(
                submitted,
                submitted_at=submitted,
                looks=0,
                typical=await self._typical_of(task),
                callbacks=self.callbacks is not None,
                rng=self._rng,
            ),
            deadline,
        )
        log.info(
            "task submitted upstream",
            extra={"channel": provider.account, "upstream_id": upstream_id},
        )

    async def _submit_failed(self, task: Task, exc: ReelgateError, *, in_doubt: bool) -> None:
        await self.failover.submit_failed(task, exc, in_doubt=in_doubt)

    # -- 3. tracking -------------------------------------------------------------------------------
    async def track(self) -> int:
        claimed = await self.service.store.claim_due(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        groups: dict[tuple[str, str | None], list[Task]] = defaultdict(list)
        for task in claimed:
            groups[(task.provider, task.account)].append(task)
        await asyncio.gather(*(self._look(key, ts) for key, ts in groups.items()))
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

    # -- shared state ------------------------------------------------------------------------------
    async def _typical_of(self, task: Task) -> float | None:
        now = self._clock()
        if now - self._typical_at >= TYPICAL_REFRESH:
            self._typical_at = now
            with contextlib.suppress(ReelgateError):
                self._typical = await self.service.store.typical_durations()
        learned = self._typical.get((task.provider, task.model))
        return learned if learned is not None else self._typical_defaults.get(task.provider)

    async def _budget(self, provider: Provider, wanted: int) -> int:
        """How many upstream calls the account's shared bucket allows now (at most ``wanted``)."""
        rate = provider.caps.bucket_rate()
        if rate is None or wanted <= 0:
            return wanted
        key = f"rpm:{provider.name}:{provider.account}"
        return await self.service.buckets.take_tokens(key, wanted, rate[0], rate[1], self._clock())

    @staticmethod
    def _rate_wait(provider: Provider) -> float:
        rate = provider.caps.bucket_rate()
        return 1.0 / rate[0] if rate else schedule.LOOKUP_RETRY.first


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
