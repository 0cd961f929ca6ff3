"""When to look at a task next, and when a task must end (clock-free, no I/O).

Functions take times and a random source and return seconds or instants; callers pass their own
(injected) clock, so tests need no real waiting. The constants live here, in one place.

The tracking schedule for a submitted task:

* a first look soon after submit (catches refusals and instant failures);
* then looks that halve the expected remaining time, so they close in on the model's typical
  duration (learned per model from finished tasks) without wasting calls early on;
* once the typical duration has passed, exponential backoff from ``near`` up to ``cap``;
* with upstream callbacks, the schedule is only a safety net: the first look waits for 1.5 times the
  typical duration and later intervals stretch by ``callback_stretch`` (the callback, confirmed
  by one look, is what normally ends a task);
* every instant is jittered and then rounded up to a ``grid`` so that due tasks coincide and one
  batch look-up serves many of them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# The shortest interval between two looks at one task (s).
MIN_INTERVAL = 0.25


def _jitter(base: float, spread: float, rng: random.Random | None) -> float:
    r = rng.random() if rng is not None else random.random()  # noqa: S311 - jitter, not crypto
    return max(0.0, base * (1 - spread + 2 * spread * r))


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.5
    factor: float = 1.6
    cap: float = 5.0
    jitter: float = 0.2  # up to ±20 %

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before look number ``attempt`` (0-based)."""
        base = min(self.cap, self.first * self.factor ** max(0, attempt))
        return _jitter(base, self.jitter, rng)


@dataclass(frozen=True, slots=True)
class TrackingSchedule:
    """The adaptive look-up schedule of a submitted task (see the module docstring)."""

    first: float = 1.0  # first look after submit
    near: float = 2.0  # shortest interval around the expected finish
    factor: float = 1.6  # backoff after the expected finish
    cap: float = 30.0  # longest interval without callbacks
    callback_stretch: float = 4.0  # with callbacks, intervals grow by this much...
    callback_cap: float = 120.0  # ...up to this cap
    default_typical: float = 60.0  # expected duration before any task of the model finished
    jitter: float = 0.1
    grid: float = 1.0  # instants are rounded up to multiples of this

    def next_look(
        self,
        now: float,
        *,
        submitted_at: float,
        looks: int,
        typical: float | None = None,
        callbacks: bool = False,
        rng: random.Random | None = None,
    ) -> float:
        """The instant of the next look at a task submitted at ``submitted_at``.

        ``looks`` counts the looks already made since submit (0 right after submit).
        """
        expected = typical if typical is not None and typical > 0 else self.default_typical
        cap = self.callback_cap if callbacks else self.cap
        stretch = self.callback_stretch if callbacks else 1.0
        # Short tasks (a local renderer) get a finer schedule; MIN_INTERVAL bounds it.
        first = min(self.first, max(MIN_INTERVAL, expected / 2))
        near = min(self.near, max(MIN_INTERVAL, expected / 4))
        elapsed = max(0.0, now - submitted_at)
        if looks <= 0:
            # With callbacks the upstream reports the end; the first look is only a safety net.
            base = expected * 1.5 if callbacks else first
        elif elapsed < expected:
            base = max(near, (expected - elapsed) / 2)
        else:
            # How many looks fit since the expected finish drives the backoff exponent.
            after = max(0, math.floor(math.log(1 + (elapsed - expected) / near, 2)))
            base = near * self.factor**after
        delay = min(cap, _jitter(base * (1 if looks <= 0 else stretch), self.jitter, rng))
        return on_grid(now + delay, min(self.grid, near))


def on_grid(instant: float, grid: float) -> float:
    """``instant`` rounded up to the next multiple of ``grid`` (no rounding when grid is 0)."""
    if grid <= 0:
        return instant
    return math.ceil(instant / grid) * grid


def learn(typical: float | None, sample: float, weight: float = 0.2) -> float:
    """The typical duration after one more finished task (an exponentially weighted mean)."""
    if typical is None or typical <= 0:
        return sample
    return typical + weight * (sample - typical)


def deadline(
    created_at: float,
    *,
    max_task_seconds: float,
    submitted_at: float | None = None,
    expires_after: float | None = None,
    grace: float = 300.0,
) -> float:
    """The instant by which a task must have ended, or it ends as ``timeout``.

    Before submission it is ``created_at + max_task_seconds``. Once submitted with an upstream
    expiry (Ark's ``execution_expires_after``), the upstream itself ends the task by then, so the
    deadline is that instant plus ``grace`` (to hear the upstream's own verdict first) — never
    later than the configured maximum.
    """
    limit = created_at + max_task_seconds
    if submitted_at is not None and expires_after is not None and expires_after > 0:
        return min(limit, submitted_at + expires_after + grace)
    return limit


# The tracking schedule of submitted tasks.
TRACKING = TrackingSchedule()
# Looking again after a failed look-up (5xx, timeout) when the upstream gives no Retry-After.
LOOKUP_RETRY = Backoff(first=2.0, factor=2.0, cap=60.0)
# Retrying a submission the upstream could not take (5xx, timeouts, 429).
SUBMIT_RETRY = Backoff(first=1.0, factor=2.0, cap=60.0)
# How many submission attempts before a task fails with ``upstream_unavailable``.
MAX_SUBMIT_ATTEMPTS = 8
# How many consecutive looks may miss a submitted task before it ends as ``upstream_lost``.
MAX_MISSING_LOOKS = 5
# A callback reporting an end moves the next look at least this close (seconds)...
CALLBACK_COALESCE = 0.1
# ...rounded up to this grid, so the callbacks of one window share one look.
CALLBACK_GRID = 0.5
# A callback claiming progress (queued → running) matters less: its look waits longer, on a
# coarser grid, so that all the starts of a few seconds share one look.
CALLBACK_COALESCE_PROGRESS = 2.0
CALLBACK_GRID_PROGRESS = 5.0
# The default upper bound on a task's life (s) when the upstream names no expiry of its own.
MAX_TASK_SECONDS = 72 * 3600.0


def callback_look(now: float, *, final: bool) -> float:
    """The instant of the look that confirms a callback received at ``now``: an end soon, a
    start later (so that many share one look); on ``CALLBACK_GRID``, so that callbacks arriving
    close together share one look however the worker's rounds fall."""
    if final:
        return on_grid(now + CALLBACK_COALESCE, CALLBACK_GRID)
    return on_grid(now + CALLBACK_COALESCE_PROGRESS, CALLBACK_GRID_PROGRESS)


# The estimate of a finished task: complete, nothing left.
DONE = (100, 0)


def estimate(
    *,
    terminal: bool,
    started_at: float,
    typical: float,
    now: float,
) -> tuple[int, int]:
    """``(estimated_progress 0-100, eta_seconds)`` from the model's typical duration.

    Finished: 100 and 0. Otherwise the share of the typical duration already spent, held below
    100 (only the upstream knows when it is really done), and the seconds left until the typical
    duration (0 once it has passed)."""
    if terminal:
        return DONE
    if typical <= 0:
        return 0, 0
    spent = max(0.0, now - started_at)
    return min(99, int(100 * spent / typical)), max(0, math.ceil(typical - spent))
