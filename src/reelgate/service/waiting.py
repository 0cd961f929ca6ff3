"""Waiting for a task to change (long-poll, SSE) and hearing of changes made elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from reelgate.core import schedule
from reelgate.core.errors import ReelgateError
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Task
from reelgate.service.base import ServiceBase
from reelgate.service.watch import TaskWatchers, Timer


class Waiting(ServiceBase):
    def __init__(self, *args: Any, timer: Timer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One watcher per waited-on task, shared by its long-polls and event streams.
        self.watchers = TaskWatchers(
            lambda owner_id, task_id: self._reread(owner_id, task_id, "watch"),
            self._held,
            recheck=lambda: self.recheck,
            timer=timer,
        )

    # -- waiting for changes -------------------------------------------------------------------
    async def wait_change(
        self, owner: ApiToken, task_id: str, version: int, seconds: float
    ) -> Task:
        """The task once its version is past ``version`` (or as it is after ``seconds``).

        Woken at once by a change this process makes or hears of (PostgreSQL NOTIFY); between
        wake-ups the task's watcher re-reads it every ``recheck`` seconds, so a change made by a
        process that cannot notify (a separate worker on SQLite) is seen within that time.
        """
        task = await self.get(owner, task_id)
        return await self.watchers.wait(task, lambda t: t.version > version, seconds)

    async def wait_status(
        self, owner: ApiToken, task_id: str, seen_version: int | None, seconds: float
    ) -> Task:
        """Long-poll: the task once its status differs from what the client last saw.

        ``seen_version`` is the version the client holds (from its ETag): an older one answers
        at once. Changes invisible to clients (a recorded upstream id) do not end the wait.
        """
        task = await self.get(owner, task_id)
        if seen_version is not None and seen_version < task.version:
            return task
        start = task.status
        return await self.watchers.wait(task, lambda t: t.status is not start, seconds)

    def _held(self, owner_id: str, task_id: str) -> Task | None:
        entry = self._tasks.peek((owner_id, task_id))
        return entry[0] if entry is not None else None

    def _wake(self, task_id: str) -> None:
        self.watchers.wake(task_id)

    async def expected_remaining(self, task: Task) -> float | None:
        """Seconds until the task is expected to finish (per-model history), None if done."""
        if task.status.terminal:
            return None
        await self._refresh_typical()
        return float(self.estimate(task)[1])

    def refresh_durations_soon(self) -> None:
        """Start a due refresh of the per-model durations in the background (``estimate`` uses
        them as they are meanwhile): for answers that must not wait."""
        if self._monotonic() >= self._typical_until:
            refresh = asyncio.ensure_future(self._refresh_typical())
            self._background.add(refresh)
            refresh.add_done_callback(self._background.discard)

    def estimate(self, task: Task) -> tuple[int, int]:
        """``(estimated_progress, eta_seconds)`` from the model's learned typical duration."""
        if task.status.terminal:
            return schedule.DONE  # (on every status GET of a finished task: no more work)
        typical = self._typical.get((task.provider, task.model), self.default_typical)
        return schedule.estimate(
            terminal=task.status.terminal,
            started_at=task.submitted_at or task.created_at or float(task.submit_time),
            typical=typical,
            now=self.clock(),
        )

    async def _refresh_typical(self) -> None:
        now = self._monotonic()
        if now >= self._typical_until:
            self._typical_until = now + 60.0
            with contextlib.suppress(ReelgateError):
                self._typical = await self.store.typical_durations()

    def remote_change(self, owner_id: str, task_id: str, version: int) -> None:
        """Another process changed a task (PostgreSQL NOTIFY): drop stale copies, wake waiters."""
        cached = self._tasks.get((owner_id, task_id))
        if cached is not None and cached.version < version:
            self._tasks.discard((owner_id, task_id))
        self._wake(task_id)
