"""Claim due tasks, submit the new ones, look up the rest in batches, apply what changed.

One loop per worker process. Tasks are claimed with a lease, so a crashed worker's tasks become
claimable again once the lease runs out; on PostgreSQL several workers share the table safely
(``FOR UPDATE SKIP LOCKED``), on SQLite run one worker process.
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
from collections.abc import Callable, Sequence

from reelgate.core import schedule
from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.errors import (
    ClientError,
    IllegalTransition,
    ReelgateError,
    UpstreamError,
    UpstreamUnavailable,
)
from reelgate.core.lifecycle import Task
from reelgate.providers.base import Provider
from reelgate.service import VideoService

log = logging.getLogger("reelgate.engine")


class Worker:
    def __init__(
        self,
        service: VideoService,
        *,
        batch_size: int = 100,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.5,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.service = service
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._rng = rng or random.Random()  # noqa: S311 - scheduling jitter
        self._clock = clock or service.clock

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then give back every lease still held."""
        log.info("worker %s started", self.id)
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
            with contextlib.suppress(ReelgateError):
                await self.service.store.release_leases(self.id)
            log.info("worker %s stopped", self.id)

    async def tick(self) -> int:
        """One round: claim a batch and handle it. Returns how many tasks were claimed."""
        claimed = await self.service.store.claim_due(
            self._clock(), self.batch_size, self.id, self.lease_seconds
        )
        if not claimed:
            return 0
        to_submit = [t for t in claimed if t.upstream_id is None]
        to_poll: dict[str, list[Task]] = defaultdict(list)
        for task in claimed:
            if task.upstream_id is not None:
                to_poll[task.provider].append(task)
        await asyncio.gather(*(self._submit(t) for t in to_submit))
        await asyncio.gather(*(self._poll(name, ts) for name, ts in to_poll.items()))
        return len(claimed)

    async def _submit(self, task: Task) -> None:
        provider = self.service.registry.provider(task.provider)
        if provider is None:
            await self.service.fail(
                task, "provider_unavailable", f"provider '{task.provider}' is not configured"
            )
            return
        try:
            upstream_id = await provider.submit(task.id, NormalizedRequest.from_json(task.request))
        except ReelgateError as exc:
            transient = isinstance(exc, UpstreamUnavailable) or not isinstance(
                exc, ClientError | UpstreamError
            )
            if not transient:
                # The request is refused, or this account cannot serve it: retrying won't help.
                await self.service.fail(task, exc.code, exc.message)
                return
            if task.submit_attempts + 1 >= schedule.MAX_SUBMIT_ATTEMPTS:
                await self.service.fail(task, "upstream_unavailable", exc.message)
                return
            delay = exc.retry_after or schedule.SUBMIT_RETRY.delay(task.submit_attempts, self._rng)
            log.warning("submit of %s failed (%s); retrying in %.1fs", task.id, exc.code, delay)
            await self.service.reschedule(task, self._clock() + delay, submit_failed=True)
            return
        await self.service.mark_submitted(
            task, upstream_id, self._clock() + schedule.POLL.delay(0, self._rng)
        )

    async def _poll(self, provider_name: str, tasks: Sequence[Task]) -> None:
        provider: Provider | None = self.service.registry.provider(provider_name)
        if provider is None:
            for task in tasks:
                await self.service.fail(
                    task, "provider_unavailable", f"provider '{provider_name}' is not configured"
                )
            return
        try:
            seen = await provider.fetch_many([t.upstream_id or "" for t in tasks])
        except ReelgateError as exc:
            log.warning("look-up at %s failed (%s)", provider_name, exc.code)
            for task in tasks:
                delay = exc.retry_after or schedule.POLL.delay(task.poll_attempts + 1, self._rng)
                await self.service.reschedule(task, self._clock() + delay, polled=True)
            return
        for task in tasks:
            next_at = self._clock() + schedule.POLL.delay(task.poll_attempts + 1, self._rng)
            if task.upstream_id is not None and seen.get(task.upstream_id, False) is None:
                await self.service.reschedule(task, next_at, polled=True)  # unreadable: retry
                continue
            observation = seen.get(task.upstream_id or "")
            if observation is None:
                if task.missing_looks + 1 >= schedule.MAX_MISSING_LOOKS:
                    await self.service.fail(
                        task, "upstream_lost", "the upstream no longer knows this task"
                    )
                else:
                    await self.service.reschedule(task, next_at, polled=True, missing=True)
                continue
            try:
                await self.service.observe(task, observation, next_at)
            except IllegalTransition as exc:
                log.error("ignored upstream report for %s: %s", task.id, exc.message)
                await self.service.reschedule(task, next_at, polled=True)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
