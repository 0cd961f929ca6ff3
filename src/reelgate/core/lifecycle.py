"""The task lifecycle: a closed set of statuses, their progress strings and the legal moves.

    queued ──► in_progress ──► success
       │            │
       └────────────┴────────► failure

``submit_time`` is set at create, ``start_time`` when work is first seen to start, ``finish_time``
when the task ends; an unset time is ``0``. Nothing leaves a terminal status.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from reelgate.core.errors import IllegalTransition


class Status(enum.StrEnum):
    """What a client sees, exactly the seed's four values."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Status.SUCCESS, Status.FAILURE})


class UpstreamState(enum.StrEnum):
    """What a provider reports, already translated from its own dialect (Ark's six values)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def progress_of(status: Status) -> str:
    """The seed's progress string for a status."""
    match status:
        case Status.QUEUED:
            return "10%"
        case Status.IN_PROGRESS:
            return "50%"
        case Status.SUCCESS | Status.FAILURE:
            return "100%"
        case _:  # pragma: no cover - exhaustive
            assert_never(status)


def status_of(state: UpstreamState) -> Status:
    match state:
        case UpstreamState.QUEUED:
            return Status.QUEUED
        case UpstreamState.RUNNING:
            return Status.IN_PROGRESS
        case UpstreamState.SUCCEEDED:
            return Status.SUCCESS
        case UpstreamState.FAILED | UpstreamState.CANCELLED | UpstreamState.EXPIRED:
            return Status.FAILURE
        case _:  # pragma: no cover - exhaustive
            assert_never(state)


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at an upstream task, in reelgate's terms."""

    state: UpstreamState
    video_url: str = ""
    last_frame_url: str = ""
    error_code: str = ""
    error_message: str = ""
    usage_tokens: int | None = None
    # Seconds of video the upstream says it made (what a per-second price settles on).
    usage_seconds: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallbackHint:
    """What an upstream callback claims (unverified): which task, and whether it says it ended.

    ``reply`` is what the upstream must get back (a challenge echoed in a handshake); a hint with
    a reply and no ``upstream_id`` is a handshake alone, naming no task."""

    upstream_id: str
    final: bool
    reply: bytes | None = None


@dataclass(frozen=True, slots=True)
class Callback:
    """An upstream's request to a task's callback address, as received (nothing verified yet):
    its body, its headers (lower-case names) and the full URL it was sent to (some upstreams
    sign the URL with the body)."""

    body: bytes
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    url: str = ""


# The error text shown in ``fail_reason`` when an upstream gives none.
_DEFAULT_FAILURE = {
    UpstreamState.FAILED: ("upstream_failed", "task failed"),
    UpstreamState.CANCELLED: ("cancelled", "task was cancelled"),
    UpstreamState.EXPIRED: ("expired", "task expired upstream before it could run"),
}


@dataclass(frozen=True, slots=True)
class Task:
    """A video task as reelgate keeps it. Immutable: every change makes a new value."""

    id: str
    owner_id: str
    provider: str
    model: str
    request: dict[str, Any]
    status: Status
    submit_time: int
    start_time: int = 0
    finish_time: int = 0
    upstream_id: str | None = None
    result_url: str = ""
    last_frame_url: str = ""
    error_code: str = ""
    error_message: str = ""
    usage_tokens: int | None = None
    usage_seconds: float | None = None
    next_poll_at: float = 0.0
    poll_attempts: int = 0
    submit_attempts: int = 0
    missing_looks: int = 0
    version: int = 1
    # Which channel serves the task; chosen when it is admitted for submission, then kept.
    channel: str | None = None
    # When the task must have ended (else ``timeout``); 0 means "not set" (no deadline).
    deadline_at: float = 0.0
    # When an upstream accepted it (the upstream id is recorded in the same write).
    submitted_at: float | None = None
    # When a submission attempt began whose outcome is not known yet: a crash or a lost reply
    # after it may have created the upstream task, so the next attempt reconciles first.
    submit_started_at: float | None = None
    # When the task was created, to the sub-second (orders lists and the admission queue).
    created_at: float = 0.0
    # Where to post this task's end besides the token's webhook endpoint (Standard Webhooks).
    callback_url: str | None = None
    # Durable copies of the result in reelgate's own storage ("local://" references).
    media_state: str = ""  # "" | pending | stored | failed | expired
    video_ref: str | None = None
    last_frame_ref: str | None = None
    # Deleted by its owner (OpenAI's DELETE): answered 404 everywhere, kept for operators.
    deleted_at: float | None = None
    # Channels a submit failed on for a reason of their own, as ",a,b," (failover skips them).
    tried_channels: str = ""
    # The providers whose offering of the model can honour the request, as ",ark,fal," ("": any
    # provider that offers the model); admission routes the task only to their channels.
    offering_providers: str = ""
    # The id of the HTTP request that created the task (it follows the task into logs, webhooks).
    request_id: str = ""

    @property
    def progress(self) -> str:
        return progress_of(self.status)

    @property
    def fail_reason(self) -> str:
        """The seed's overloaded field: the video URL on success, the error text on failure."""
        if self.status is Status.SUCCESS:
            return self.result_url
        if self.status is Status.FAILURE:
            return self.error_message
        return ""


def apply(task: Task, seen: Observation, now: float) -> Task | None:
    """The task after an observation, or ``None`` when nothing changes.

    Raises IllegalTransition for a move the lifecycle forbids (leaving a terminal status, or going
    back from in_progress to queued); callers log it and keep the stored task.
    """
    target = status_of(seen.state)
    ts = int(now)
    if task.status.terminal:
        if target is task.status:
            return None
        raise IllegalTransition(
            f"task {task.id} is {task.status}; it cannot become {target}",
        )
    if target is task.status:
        return None
    if task.status is Status.IN_PROGRESS and target is Status.QUEUED:
        raise IllegalTransition(f"task {task.id} is in_progress; it cannot go back to queued")
    start = task.start_time or ts
    match target:
        case Status.QUEUED:  # pragma: no cover - equal statuses return above
            return None
        case Status.IN_PROGRESS:
            return dataclasses.replace(task, status=target, start_time=start)
        case Status.SUCCESS:
            if not seen.video_url:
                raise IllegalTransition(f"task {task.id} succeeded upstream without a video URL")
            return dataclasses.replace(
                task,
                status=target,
                start_time=start,
                finish_time=ts,
                result_url=seen.video_url,
                last_frame_url=seen.last_frame_url,
                usage_tokens=seen.usage_tokens,
                usage_seconds=seen.usage_seconds,
            )
        case Status.FAILURE:
            code, message = _DEFAULT_FAILURE.get(seen.state, ("upstream_failed", "task failed"))
            return fail(
                task,
                code=seen.error_code or code,
                message=seen.error_message or message,
                now=now,
            )
        case _:  # pragma: no cover - exhaustive
            assert_never(target)


def fail(task: Task, *, code: str, message: str, now: float) -> Task:
    """End a non-terminal task as a failure decided by reelgate itself (timeout, lost, refused)."""
    if task.status.terminal:
        raise IllegalTransition(f"task {task.id} is already {task.status}")
    ts = int(now)
    return dataclasses.replace(
        task,
        status=Status.FAILURE,
        start_time=task.start_time,
        finish_time=ts,
        error_code=code,
        error_message=message,
    )
