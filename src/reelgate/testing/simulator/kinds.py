"""What every simulator shares: the faults it injects and the outcomes it scripts.

``Fault`` names an endpoint (or a group of them: ``create``, ``lookup``, ``cancel``, ``any``) and
a ``FaultKind``; ``Outcome`` is how a scripted task ends. The contract suite speaks only these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FaultKind(enum.StrEnum):
    """The shared ways a request goes wrong (the values are the ``/_sim/faults`` wire names)."""

    SERVER_ERROR = "500"  # the upstream's 500 error body
    RATE_LIMITED = "429"  # the upstream's 429 error body with ``Retry-After``
    RATE_LIMITED_BARE = "429-bare"  # the same without ``Retry-After``
    TIMEOUT = "timeout"  # the request is carried out, the answer hangs, then arrives broken
    RESET = "reset"  # the request is carried out, the connection is reset mid-answer
    MALFORMED = "malformed"  # the request is carried out, the answer is not valid JSON
    SLOW = "slow"  # a correct answer, trickled out a few bytes at a time

    @property
    def loses_answer(self) -> bool:
        """Whether the upstream did the work but the caller never reads a valid answer."""
        return self in (FaultKind.TIMEOUT, FaultKind.RESET, FaultKind.MALFORMED)

    @property
    def error_status(self) -> int | None:
        """The HTTP status of an error answer, or None for the other kinds."""
        return {
            FaultKind.SERVER_ERROR: 500,
            FaultKind.RATE_LIMITED: 429,
            FaultKind.RATE_LIMITED_BARE: 429,
        }.get(self)


@dataclass
class Fault:
    """Hit the next ``count`` requests to ``endpoint`` with ``kind``."""

    endpoint: str  # an endpoint of the simulator, a group of them, or "any"
    kind: FaultKind
    count: int = 1
    retry_after: float = 1.0  # the Retry-After header of a RATE_LIMITED answer, in seconds

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)  # accepts the wire names ("500", "slow", ...)
        if self.count < 1:
            raise ValueError("a fault needs a count of at least 1")


class Outcome(enum.StrEnum):
    """How a scripted task ends upstream."""

    SUCCESS = "success"  # queued, running, succeeded with a video
    FAILURE = "failure"  # failed for an ordinary reason (not moderation)
    MODERATION = "moderation"  # refused by the upstream's moderation (at create or at the end)
    EXPIRY = "expiry"  # expired in the upstream's queue
    UNKNOWN_STATUS = "unknown_status"  # shows a status string outside the upstream's documented set
