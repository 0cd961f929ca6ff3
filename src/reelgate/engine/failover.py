"""What the engine does after a failed submit: the task's next step and the channel's health.

The verdict (``core.channels.verdict``) decides; this module carries it out:

- **fail**: the request itself is refused — the task ends with the upstream's code.
- **disable**: the account can't work (auth, overdue) — the channel is disabled with the reason,
  and the task goes to the next channel that serves its model, or ends when none is left.
- **cool down**: the account is busy (429) — the channel rests, the task is free for any channel
  (a 429 proves nothing was created).
- **next**: the account can't serve this request now (model not open there, 5xx, no answer).
  A 5xx or a lost answer may still have created the task, so the task stays on the channel until
  the next attempt has reconciled it there; only then does it move on (``release_after_reconcile``).
- **retry**: a fault nobody is to blame for — the same channel again after a back-off.

A task never goes back to a channel it failed on (``tried_channels``) unless every channel that
serves its model has been tried; then the list starts over and the back-off paces the attempts.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable

from reelgate.core import schedule
from reelgate.core.channels import (
    COOL_DOWN_S,
    Verdict,
    candidates,
    tried,
    verdict,
    with_tried,
)
from reelgate.core.errors import ClientError, ReelgateError, UpstreamError, UpstreamUnavailable
from reelgate.core.lifecycle import Task
from reelgate.service import VideoService

log = logging.getLogger("reelgate.engine")

# A definite refusal (an HTTP answer that is not a 5xx): the upstream made nothing.
_ANSWERED = frozenset(
    {
        "upstream_auth_failed",
        "upstream_account_error",
        "upstream_model_unavailable",
        "upstream_quota_exceeded",
        "upstream_rate_limited",
    }
)


class Failover:
    def __init__(
        self, service: VideoService, clock: Callable[[], float], rng: random.Random
    ) -> None:
        self.service = service
        self._clock = clock
        self._rng = rng

    def _others(self, task: Task, marks: str) -> bool:
        """Whether a channel that has not failed this task may still take it (of any provider
        whose offering of the model can honour the request)."""
        eligible = tried(task.offering_providers)
        chans = [
            c
            for c in self.service.registry.channels_for(task.model)
            if not eligible or c.provider in eligible
        ]
        return bool(candidates(chans, task.model, exclude=tried(marks)))

    def _managed(self, task: Task) -> bool:
        """Whether the task's channel has a health record (built-in ones have none)."""
        channel = self.service.registry.channel(task.channel or "")
        return (
            self.service.channels is not None
            and channel is not None
            and channel.source != "builtin"
        )

    async def submit_failed(
        self, task: Task, exc: ReelgateError, *, in_doubt: bool = False
    ) -> None:
        """``in_doubt``: ``exc`` answered the look for an earlier attempt, whose outcome stays
        unknown; whatever it says, the task keeps that attempt on its channel."""
        client_error = isinstance(exc, ClientError)
        transient = isinstance(exc, UpstreamUnavailable) or not isinstance(
            exc, ClientError | UpstreamError
        )
        decision = verdict(exc.code, client_error=client_error, transient=transient)
        if decision is Verdict.FAIL:
            await self.service.fail(task, exc.code, exc.message)
            return
        if task.submit_attempts + 1 >= schedule.MAX_SUBMIT_ATTEMPTS:
            final = exc.code if decision is Verdict.DISABLE else "upstream_unavailable"
            await self.service.fail(task, final, exc.message)
            return
        now = self._clock()
        channel_name = task.channel or ""
        book = self.service.channels
        if book is not None and self._managed(task):
            if decision is Verdict.DISABLE:
                await book.disable(channel_name, f"{exc.code}: {exc.message}")
            elif decision is Verdict.COOL_DOWN:
                await book.cool_down(
                    channel_name,
                    now + (exc.retry_after or COOL_DOWN_S),
                    f"{exc.code}: {exc.message}",
                )
        marks = task.tried_channels
        if decision in (Verdict.DISABLE, Verdict.NEXT):
            marks = with_tried(marks, channel_name)
        others = self._others(task, marks)
        if decision in (Verdict.DISABLE, Verdict.NEXT) and not others:
            if decision is Verdict.DISABLE or exc.code == "upstream_model_unavailable":
                await self.service.fail(
                    task, exc.code, f"{exc.message} (no other channel can take the task)"
                )
                return
            marks = ""  # every channel failed it once: start over, paced by the back-off
        task = dataclasses.replace(task, tried_channels=marks)
        if exc.code in _ANSWERED and not in_doubt:
            # Nothing was created: the task is free for any channel it has not failed on.
            delay = 0.0 if others else self._delay(task, exc)
            log.warning(
                "submit of %s on channel %s failed (%s); %s",
                task.id,
                channel_name,
                exc.code,
                "moving it to another channel" if others else f"retrying in {delay:.1f}s",
            )
            freed = dataclasses.replace(task, channel=None, submit_started_at=None)
            await self.service.reschedule(freed, now + delay, submit_failed=True)
            return
        delay = self._delay(task, exc)
        log.warning("submit of %s failed (%s); retrying in %.1fs", task.id, exc.code, delay)
        await self.service.reschedule(task, now + delay, submit_failed=True)

    def _delay(self, task: Task, exc: ReelgateError) -> float:
        return exc.retry_after or schedule.SUBMIT_RETRY.delay(task.submit_attempts, self._rng)

    async def release_after_reconcile(self, task: Task) -> bool:
        """After a reconcile found nothing: a task whose last attempt on this channel failed
        moves to another channel, free (nothing was created). True when it moved."""
        channel_name = task.channel or ""
        marks = task.tried_channels
        if channel_name not in tried(marks) or not self._others(task, marks):
            return False
        log.warning("task %s was not created on channel %s; moving it on", task.id, channel_name)
        freed = dataclasses.replace(task, channel=None, submit_started_at=None)
        await self.service.reschedule(freed, self._clock())
        return True
