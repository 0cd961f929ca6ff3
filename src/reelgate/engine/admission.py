"""The worker's admission round and the state both of its loops share.

``Admission.admit``: per channel (of any provider that offers the tasks' models), as many of the
oldest unsubmitted tasks as its caps allow are submitted; a task whose earlier attempt may have
reached the upstream is reconciled before it is sent again. ``engine.worker.Worker`` sets the
state up and adds the tracking loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence

from reelgate import logs
from reelgate.core import schedule
from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.channels import Channel, ChannelState, admission_plan
from reelgate.core.errors import ReelgateError
from reelgate.core.lifecycle import Task
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.failover import Failover
from reelgate.engine.supervisor import (
    FAULT_RETRY,
    INTERNAL_CODE,
    INTERNAL_MESSAGE,
    MAX_FAULTS,
    FaultCounter,
    Pause,
    log_fault,
    settle_all,
    unavailable,
)
from reelgate.providers.base import Provider
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.base import RateBuckets, TaskQueue

log = logging.getLogger("reelgate.engine")

TYPICAL_REFRESH = 60.0
# Submissions in flight at once per worker.
SUBMIT_CONCURRENCY = 16


def routing_groups(
    registry: Registry, waiting: Mapping[str, int]
) -> list[tuple[list[str], list[Channel], int]]:
    """The models with waiting tasks, grouped by the channels that serve them: (models, their
    channels, how many tasks wait). Models served by the same channels share one plan, so a
    channel is claimed for once per round however many of its models have work."""
    groups: dict[tuple[str, ...], tuple[list[str], list[Channel], list[int]]] = {}
    for model, count in sorted(waiting.items()):
        channels = registry.channels_for(model)
        if not channels:
            continue  # no channel here serves it (any more): it waits, or times out
        key = tuple(sorted(c.name for c in channels))
        entry = groups.setdefault(key, ([], channels, []))
        entry[0].append(model)
        entry[2].append(count)
    return [(models, chans, sum(counts)) for models, chans, counts in groups.values()]


class WorkerState:
    """What the worker's loops share (set up by ``Worker.__init__``), and helpers on it."""

    service: VideoService
    # The engine's ports: claims and leases, and the shared rate buckets.
    queue: TaskQueue
    buckets: RateBuckets
    id: str
    batch_size: int
    lease_seconds: float
    callbacks: CallbackUrls | None
    tracking: schedule.TrackingSchedule
    failover: Failover
    _rng: random.Random
    _clock: Callable[[], float]
    _typical_defaults: dict[str, float]
    _typical: dict[tuple[str, str], float]
    _typical_at: float
    _submit_slots: asyncio.Semaphore
    _pause: Pause
    # Consecutive faults per task (tracking), in this process.
    _faults: FaultCounter
    # Per loop: tasks claimed by a round that failed, whose leases this worker may still hold
    # (the heartbeat would keep them alive): given back by that loop before its next claim.
    _orphans: dict[str, set[str]]

    async def _unit(self, loop: str, task: Task, step: Callable[[], Awaitable[object]]) -> bool:
        """Handle one task (``step``) so that whatever it raises stays this task's problem.
        True when it went through. A store that is away fails the whole round instead."""
        with logs.bound(task_id=task.id, request_id=task.request_id):
            try:
                await step()
            except Exception as exc:
                if unavailable(exc):
                    raise  # the round fails and backs off; the lease comes back
                await self._fault(loop, task, exc)
                return False
            return True

    async def _fault(
        self, loop: str, task: Task, exc: BaseException, *, trace: bool = True
    ) -> None:
        """Handling ``task`` raised: log it, then look again after a back-off or, after
        ``MAX_FAULTS`` in a row, end the task with ``internal_error``."""
        count = self._faults.add(task.id)
        final = count >= MAX_FAULTS
        delay = FAULT_RETRY.delay(count - 1, self._rng)
        log_fault(
            loop,
            f"task {task.id}",
            exc,
            count,
            MAX_FAULTS,
            None if final else delay,
            trace=trace,
        )
        try:
            if final:
                self._faults.clear(task.id)
                await self.service.fail(task, INTERNAL_CODE, INTERNAL_MESSAGE)
            else:
                await self.service.reschedule(task, self._clock() + delay)
        except Exception as again:  # the store is away too: the lease comes back
            log.error("cannot record the fault of %s (%s)", task.id, type(again).__name__)
            self._orphans[loop].add(task.id)

    def _orphan(self, loop: str, tasks: Sequence[Task]) -> None:
        self._orphans[loop].update(t.id for t in tasks)

    async def _give_back(self, loop: str) -> None:
        """End this worker's leases on the tasks a failed round of ``loop`` left behind, so that
        they are claimed again (by any worker) instead of being kept alive by the heartbeat. A
        lease on a task that was settled after all is gone already: nothing happens to it."""
        orphans, self._orphans[loop] = self._orphans[loop], set()
        if not orphans:
            return
        now = self._clock()
        left = sorted(orphans)
        try:
            while left:
                await self.queue.hold(left[0], self.id, now, now - 1.0)
                left.pop(0)
        finally:
            self._orphans[loop].update(left)
        log.warning("gave back %d tasks a failed %s round had claimed", len(orphans), loop)

    async def _typical_of(self, task: Task) -> float | None:
        now = self._clock()
        if now - self._typical_at >= TYPICAL_REFRESH:
            self._typical_at = now
            with contextlib.suppress(ReelgateError):
                self._typical = await self.queue.typical_durations()
        learned = self._typical.get((task.provider, task.model))
        return learned if learned is not None else self._typical_defaults.get(task.provider)

    async def _budget(self, provider: Provider, wanted: int) -> int:
        """How many upstream calls the channel's shared bucket allows now (at most ``wanted``)."""
        rate = provider.caps.bucket_rate()
        if rate is None or wanted <= 0:
            return wanted
        key = f"rpm:{provider.name}:{provider.channel}"
        return await self.buckets.take_tokens(key, wanted, rate[0], rate[1], self._clock())

    @staticmethod
    def _rate_wait(provider: Provider) -> float:
        rate = provider.caps.bucket_rate()
        return 1.0 / rate[0] if rate else schedule.LOOKUP_RETRY.first


class Admission(WorkerState):
    async def admit(self) -> int:
        """One admission round: per group of models served by the same channels, the waiting
        tasks shared among those channels (of any provider) by priority and weight."""
        await self._give_back("admission")
        handled = 0
        now = self._clock()
        waiting = await self.queue.count_unsubmitted(now, self.batch_size)
        for models, channels, count in routing_groups(self.service.registry, waiting):
            left = self.batch_size
            for planned, share in admission_plan(channels, count, now, self._rng):
                # A submit earlier in this round may have disabled or cooled the channel.
                registry = self.service.registry
                channel = registry.channel(planned.name)
                provider = registry.instance(planned.name)
                limit = left if share is None else min(share, left)
                if (
                    channel is None
                    or provider is None
                    or limit <= 0
                    or channel.state(now) is not ChannelState.ACTIVE
                ):
                    continue
                claimed = await self.queue.claim_admission(
                    channel.provider,
                    channel.name,
                    channel.caps,
                    now,
                    self.id,
                    self.lease_seconds,
                    limit,
                    models=[m for m in models if registry.serves(channel, m)],
                )
                handled += len(claimed)
                left -= len(claimed)
                try:
                    allowed = await self._budget(provider, len(claimed))
                    for task in claimed[allowed:]:
                        # Over the channel's request rate: back in the queue, untouched.
                        await self.service.reschedule(task, now + self._rate_wait(provider))
                    await settle_all(self._submit(provider, t, now) for t in claimed[:allowed])
                except BaseException:
                    self._orphan("admission", claimed)
                    raise
        return handled

    async def _submit(self, provider: Provider, claimed: Task, now: float) -> None:
        with logs.bound(task_id=claimed.id, request_id=claimed.request_id):
            try:
                await self._submit_one(provider, claimed, now)
            except Exception as exc:
                if unavailable(exc):
                    raise  # the store is away: the round fails, the lease comes back
                await self._submit_fault(provider, claimed, now, exc)

    async def _submit_fault(
        self, provider: Provider, claimed: Task, now: float, exc: Exception
    ) -> None:
        """Submitting raised (a bug, a value the provider could not encode…). The attempt may
        have reached the upstream, so the task stays on its channel and the next attempt
        reconciles first; the attempts are the task's own (``submit_attempts``, kept across
        restarts), so a task that raises every time ends with ``internal_error``."""
        task = dataclasses.replace(
            claimed, channel=provider.channel, submit_started_at=claimed.submit_started_at or now
        )
        attempt = task.submit_attempts + 1
        final = attempt >= schedule.MAX_SUBMIT_ATTEMPTS
        delay = schedule.SUBMIT_RETRY.delay(task.submit_attempts, self._rng)
        log_fault(
            "admission",
            f"submit of {task.id}",
            exc,
            attempt,
            schedule.MAX_SUBMIT_ATTEMPTS,
            None if final else delay,
        )
        try:
            if final:
                await self.service.fail(task, INTERNAL_CODE, INTERNAL_MESSAGE)
            else:
                await self.service.reschedule(task, self._clock() + delay, submit_failed=True)
        except Exception as again:  # the store is away too: the lease comes back
            log.error("cannot record the fault of %s (%s)", task.id, type(again).__name__)
            self._orphans["admission"].add(task.id)

    async def _submit_one(self, provider: Provider, claimed: Task, now: float) -> None:
        # An attempt that began before this claim may have reached the upstream.
        uncertain = claimed.submit_started_at is not None
        task = dataclasses.replace(
            claimed, channel=provider.channel, submit_started_at=claimed.submit_started_at or now
        )
        request = dataclasses.replace(
            NormalizedRequest.from_json(task.request), deadline_at=task.deadline_at
        )
        async with self._submit_slots:
            start = self._clock()
            # A lease claimed moments ago is still this worker's: nobody takes a task before
            # its lease ends (a whole lease after the claim), so only a long wait for a slot
            # needs the check (and the renewal) that costs a transaction.
            if start - now >= self.lease_seconds / 3 and not await self.queue.hold(
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
            extra={"channel": provider.channel, "upstream_id": upstream_id},
        )

    async def _submit_failed(self, task: Task, exc: ReelgateError, *, in_doubt: bool) -> None:
        await self.failover.submit_failed(task, exc, in_doubt=in_doubt)
