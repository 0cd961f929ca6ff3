"""What the engine reports: submissions, observations, failures, reschedules, and upstream
callbacks (which only bring a look-up forward)."""

from __future__ import annotations

import dataclasses

from reelgate.core import lifecycle, schedule
from reelgate.core.lifecycle import Observation, Task
from reelgate.service.base import ServiceBase


class EngineWrites(ServiceBase):
    # -- writes from the engine --------------------------------------------------------------
    async def mark_submitted(
        self, task: Task, upstream_id: str, next_poll_at: float, deadline_at: float
    ) -> Task:
        """Record the upstream id; the same write ends the "being submitted" state."""
        return await self._write(
            task,
            dataclasses.replace(
                task,
                upstream_id=upstream_id,
                submitted_at=self.clock(),
                submit_started_at=None,
                submit_attempts=task.submit_attempts + 1,
                next_poll_at=next_poll_at,
                deadline_at=deadline_at,
                poll_attempts=0,
            ),
        )

    async def observe(self, task: Task, seen: Observation, next_poll_at: float) -> Task:
        """Apply an upstream observation; raises IllegalTransition for forbidden moves."""
        changed = lifecycle.apply(task, seen, self.clock())
        if changed is None:
            await self.reschedule(task, next_poll_at, polled=True)
            return task
        return await self._write(
            task,
            dataclasses.replace(
                changed,
                next_poll_at=next_poll_at,
                poll_attempts=task.poll_attempts + 1,
                missing_looks=0,
            ),
        )

    async def fail(self, task: Task, code: str, message: str) -> Task:
        return await self._write(
            task, lifecycle.fail(task, code=code, message=message, now=self.clock())
        )

    async def reschedule(
        self,
        task: Task,
        next_poll_at: float,
        *,
        polled: bool = False,
        submit_failed: bool = False,
        missing: bool = False,
    ) -> None:
        """Look again later without a visible change (no version bump, caches stay valid)."""
        await self.store.save_task(
            dataclasses.replace(
                task,
                next_poll_at=next_poll_at,
                poll_attempts=task.poll_attempts + int(polled),
                submit_attempts=task.submit_attempts + int(submit_failed),
                missing_looks=task.missing_looks + 1 if missing else 0,
            ),
            task.version,
        )

    # -- upstream callbacks --------------------------------------------------------------------
    async def callback(self, provider_name: str, task_id: str, body: bytes) -> bool:
        """An upstream says a task changed: look it up soon (the engine confirms before applying).

        The caller has checked the address's token. Returns whether a look was scheduled: a
        callback for a finished task, another provider's, or naming another upstream task
        changes nothing.
        """
        task = await self.store.find_task(task_id)
        provider = self.registry.provider(provider_name)
        if task is None or provider is None or task.provider != provider_name:
            return False
        if task.status.terminal or task.upstream_id is None:
            return False
        hint = provider.parse_callback(body)
        if hint is not None and hint.upstream_id != task.upstream_id:
            return False
        # An end is confirmed at once; a start only soon (so that many share one look-up).
        final = hint is None or hint.final
        delay = schedule.CALLBACK_COALESCE if final else schedule.CALLBACK_COALESCE_PROGRESS
        nudged = await self.store.nudge(task.id, self.clock() + delay)
        if nudged:
            self.work_available.set()
        return nudged
