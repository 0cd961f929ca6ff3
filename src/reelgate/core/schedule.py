"""When to look at a task next: exponential backoff with jitter and a cap (clock-free).

All functions take the attempt count and a random source and return seconds; callers add them to
their own (injected) clock, so tests need no real waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.5
    factor: float = 1.6
    cap: float = 5.0
    jitter: float = 0.2  # up to ±20 %

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before look number ``attempt`` (0-based)."""
        base = min(self.cap, self.first * self.factor ** max(0, attempt))
        spread = base * self.jitter
        r = rng.random() if rng is not None else random.random()  # noqa: S311 - jitter, not crypto
        return max(0.0, base - spread + 2 * spread * r)


# Looking at an upstream task: soon after submit, then every few seconds.
POLL = Backoff(first=0.5, factor=1.6, cap=5.0)
# Retrying a submission the upstream could not take (5xx, timeouts, 429).
SUBMIT_RETRY = Backoff(first=1.0, factor=2.0, cap=60.0)
# How many submission attempts before a task fails with ``upstream_unavailable``.
MAX_SUBMIT_ATTEMPTS = 8
# How many consecutive looks may miss a submitted task before it ends as ``upstream_lost``.
MAX_MISSING_LOOKS = 20
