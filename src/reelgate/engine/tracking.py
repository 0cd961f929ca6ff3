"""The worker's tracking loop: deadlines and channels every few seconds, then batch look-ups.

``Tracking.track``: due tasks grouped by (provider, channel), one batch look-up per group, each
task's observation applied through the service; the next look follows ``schedule.TRACKING``. A
look-up that raises is split in halves (at most ``SPLIT_LOOKS`` more calls) until the tasks that
make it raise are found; each of them takes a fault (``WorkerState._fault``).
``Tracking.sweep``: unfinished tasks past their deadline end as ``timeout``.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from reelgate import logs
from reelgate.core import schedule
from reelgate.core.errors import IllegalTransition, ReelgateError
from reelgate.core.lifecycle import Observation, Status, Task, UpstreamState
from reelgate.engine.admission import WorkerState
from reelgate.engine.supervisor import log_fault, settle_all, unavailable
from reelgate.metrics import METRICS
from reelgate.providers.base import Provider

log = logging.getLogger("reelgate.engine")
T = TypeVar("T")

SWEEP_INTERVAL = 5.0
# How often channels disabled by their health are checked for a due probe (s).
PROBE_CHECK_INTERVAL = 10.0
# Extra look-ups a batch that raised may cost while it is split to find the task that makes it
# raise (one such task in 500 takes about 2·log2(500) = 18).
SPLIT_LOOKS = 32


class Tracking(WorkerState):
    _next_sweep: float
    _next_probe: float

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
            log_fault(loop, f"the {loop} step", exc, then="it runs again next round")
            return otherwise

    # -- 1. deadlines ------------------------------------------------------------------------------
    async def sweep(self) -> int:
        await self._give_back("tracking")
        overdue = await self.queue.claim_overdue(
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
        provider = self.service.registry.instance_of(task.provider, task.channel)
        if provider is not None and task.upstream_id and task.status is Status.QUEUED:
            # Still waiting upstream: withdraw it so it is not run (and billed) for nothing.
            try:
                await provider.cancel(task.upstream_id)
            except ReelgateError:
                pass  # it may have started meanwhile; the task ends here either way
            except Exception as exc:  # the provider's bug: logged, and the task still ends
                log_fault("sweeper", f"cancel of {task.id}", exc, then="the task ends anyway")
        where = "upstream" if task.upstream_id else "in reelgate's queue"
        await self.service.fail(
            task, "timeout", f"the task did not finish before its deadline (it was {where})"
        )

    # -- 3. tracking -------------------------------------------------------------------------------
    async def track(self) -> int:
        await self._give_back("tracking")
        claimed = await self.queue.claim_due(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        groups: dict[tuple[str, str | None], list[Task]] = defaultdict(list)
        for task in claimed:
            groups[(task.provider, task.channel)].append(task)
        try:
            await settle_all(self._look(key, ts) for key, ts in groups.items())
        except BaseException:
            self._orphan("tracking", claimed)
            raise
        await self.service.flush_learning()
        return len(claimed)

    async def _look(self, key: tuple[str, str | None], tasks: Sequence[Task]) -> None:
        provider = self.service.registry.instance_of(*key)
        if provider is None:
            gone = f"provider '{key[0]}' (channel '{key[1]}') is no longer configured"
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
            seen = await provider.look_up([t.upstream_id or "" for t in tasks])
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
