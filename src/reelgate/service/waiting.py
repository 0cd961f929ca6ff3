"""Waiting for a task to change (long-poll, SSE) and hearing of changes made elsewhere."""

from __future__ import annotations

import asyncio
import contextlib

from reelgate.core import schedule
from reelgate.core.errors import ReelgateError
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Task
from reelgate.service.base import ServiceBase


class Waiting(ServiceBase):
    # -- waiting for changes -------------------------------------------------------------------
    async def wait_change(
        self, owner: ApiToken, task_id: str, version: int, seconds: float
    ) -> Task:
        """The task once its version is past ``version`` (or as it is after ``seconds``).

        Woken at once by a change this process makes or hears of (PostgreSQL NOTIFY); between
        wake-ups the row is re-read every ``recheck`` seconds, so a change made by a process that
        cannot notify (a separate worker on SQLite) is seen within that time.
        """
        loop = asyncio.get_running_loop()  # waiting is real time, whatever the task clock says
        deadline = loop.time() + max(0.0, seconds)
        task = await self.get(owner, task_id)
        while task.version <= version and not task.status.terminal:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            event = self._waiters.setdefault(task_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, self.recheck))
            task = await self.refresh(owner, task_id)
        return task

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not task.status.terminal and task.status is start:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            task = await self.wait_change(owner, task_id, task.version, remaining)
        return task

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
