"""Webhooks reelgate sends, per Standard Webhooks: events, signatures, the retry schedule (no I/O).

A delivery is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under
each current ``whsec_`` secret of the token (two during a rotation), base64, as
``webhook-signature: v1,<sig> [v1,<sig>]``. Receivers deduplicate on ``webhook-id``, which stays
the same across retries and replays of one delivery.

The body is OpenAI's event shape, ``{"id", "object": "event", "type", "created_at", "data"}``,
whose ``data.id`` is the video's (task's) id, as OpenAI-style handlers read it; ``data`` also
carries the whole task as the status GET shows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reelgate.core.lifecycle import Status, Task

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
# Seconds to wait before each attempt after the first: now, 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 14 h, 20 h, 24 h.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` signature per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets_
    )


def event_type(task: Task) -> str | None:
    """The event a task's end raises (None while it runs)."""
    if task.status is Status.SUCCESS:
        return "video.completed"
    if task.status is Status.FAILURE:
        return "video.cancelled" if task.error_code == "cancelled" else "video.failed"
    return None


def next_attempt(attempts_made: int, now: float, scale: float = 1.0) -> float | None:
    """When to try again after ``attempts_made`` failed attempts; None once they are used up."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    return now + RETRY_DELAYS[attempts_made - 1] * scale if attempts_made > 0 else now


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A token's webhook endpoint and its signing secrets."""

    owner_id: str
    url: str | None
    secret: str
    previous_secret: str | None = None
    previous_until: float | None = None
    disabled_at: float | None = None
    disabled_reason: str = ""

    def secrets_at(self, now: float) -> list[str]:
        """The secrets to sign with: the current one, and the previous one during a rotation."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    @property
    def enabled(self) -> bool:
        return self.url is not None and self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    at: float
    status: int | None
    error: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one target, tried until delivered, refused (410) or out of attempts."""

    id: str
    owner_id: str
    task_id: str
    target: str  # "task" (the task's callback_url) | "endpoint" (the token's endpoint)
    url: str
    event: str
    state: str  # pending | delivered | failed | disabled
    attempts: int
    next_attempt_at: float
    created_at: float
    payload: str | None = None
    last_status: int | None = None
    last_error: str = ""
    log: tuple[Attempt, ...] = ()
    request_id: str = ""  # of the request that created the task


def event_body(delivery: Delivery, task: Mapping[str, Any]) -> str:
    """The JSON body of ``delivery``'s event about ``task`` (rendered as the status GET shows
    it): OpenAI's shape, ``data.id`` the task's id first, every field of the task after it."""
    data = {"id": delivery.task_id, **{k: v for k, v in task.items() if k != "id"}}
    return json.dumps(
        {
            "id": delivery.id,
            "object": "event",
            "type": delivery.event,
            "created_at": int(delivery.created_at),
            "data": data,
        }
    )
