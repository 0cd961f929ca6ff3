"""What the engine reports: submissions, observations, failures, reschedules, and upstream
callbacks (which only bring a look-up forward)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from reelgate.core import lifecycle, schedule
from reelgate.core.lifecycle import Callback, Observation, Task
from reelgate.core.media import MediaCopy
from reelgate.metrics import METRICS
from reelgate.service.base import ServiceBase

log = logging.getLogger("reelgate.service")

# References to files in reelgate's mirror storage (served at signed links).
MIRROR_SCHEME = "local://mirror/"


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
    async def callback(
        self, provider_name: str, task_id: str, callback: Callback
    ) -> tuple[bool, bytes | None]:
        """An upstream says a task changed: look it up soon (the engine confirms before applying).

        The caller has checked the address's token. Returns whether a look was scheduled (a
        callback for a finished task, another provider's, or naming another upstream task
        changes nothing), and what to answer the upstream with when its protocol wants an
        answer (a handshake's challenge).
        """
        task = await self.store.find_task(task_id)
        if task is None or task.provider != provider_name:
            return False, None
        # The channel that created the task reads it (a signed callback needs its secret).
        provider = self.registry.instance_of(provider_name, task.channel)
        if provider is None:
            return False, None
        try:
            hint = provider.parse_callback(callback)
        except Exception as exc:  # the provider's bug: a look-up will tell what happened
            METRICS.engine_faults.labels("callbacks").inc()
            log.error(
                "parsing a callback for %s raised %s; looking the task up instead",
                task.id,
                type(exc).__name__,
                exc_info=exc,
                extra={"task_id": task.id, "request_id": task.request_id},
            )
            hint = None
        reply = hint.reply if hint is not None else None
        if hint is not None and reply is not None and not hint.upstream_id:
            return False, reply  # a handshake alone
        if task.status.terminal or task.upstream_id is None:
            return False, reply
        if hint is not None and hint.upstream_id != task.upstream_id:
            return False, reply
        # An end is confirmed at once; a start only soon (so that many share one look-up).
        final = hint is None or hint.final
        nudged = await self.store.nudge(task.id, schedule.callback_look(self.clock(), final=final))
        if nudged:
            self.work_available.set()
        return nudged, reply

    async def media_settled(self, task_id: str, copies: Sequence[MediaCopy]) -> Task | None:
        """Record where a task's result files are kept now that every copy job has ended."""
        task = await self.store.find_task(task_id)
        if task is None or any(c.state == "pending" for c in copies):
            return task
        stored = {c.variant: c for c in copies if c.state == "stored" and c.name}
        video = stored.get("video")
        frame = stored.get("last_frame")
        for _ in range(3):
            changed = dataclasses.replace(
                task,
                media_state="stored" if video else "failed",
                video_ref=f"{MIRROR_SCHEME}{video.name}" if video else None,
                last_frame_ref=f"{MIRROR_SCHEME}{frame.name}" if frame else None,
            )
            written = await self._write(task, changed)
            if written is not task:
                return written
            refreshed = await self.store.find_task(task_id)
            if refreshed is None:
                return None
            task = refreshed
        return task

    async def media_expired(self, task_id: str) -> None:
        """The durable copies passed their retention: links fall back to the upstream's."""
        task = await self.store.find_task(task_id)
        if task is not None and task.media_state == "stored":
            await self._write(
                task,
                dataclasses.replace(
                    task, media_state="expired", video_ref=None, last_frame_ref=None
                ),
            )
