"""A clock that moves only when told to: inject it wherever reelgate takes a ``clock`` (the
service, the worker, the sandbox, a simulator) and step time on with ``advance``."""

from __future__ import annotations

__all__ = ["ManualClock"]

# 2027-01-15 08:00 UTC: a fixed, plausible "now" so timestamps in tests are stable.
DEFAULT_START = 1_800_000_000.0


class ManualClock:
    """Seconds since the epoch, as ``time.time`` gives, but only ``advance`` and ``set`` move it.

    Call it (``clock()``) or ask it (``clock.now()``): the same instant either way.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds`` (never back); returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards; use set() to travel")
        self._now += seconds
        return self._now

    def set(self, instant: float) -> None:
        """Jump to ``instant`` (tests of clock skew may go back)."""
        self._now = float(instant)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
