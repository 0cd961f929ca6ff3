"""Keeping the engine's loops alive: one task's fault is that task's, a failing round backs off,
and a loop that stops anyway is started again.

Three layers, innermost first:

- **A unit** (one task's submit or look, one webhook delivery, one media copy): an exception
  raised while handling it is caught there, logged with its traceback and the unit's ids,
  counted (``reelgate_engine_faults``), and the unit is retried after a back-off
  (``FAULT_RETRY``) until ``MAX_FAULTS``, then ended with ``internal_error`` and a generic
  message (the reason stays in the log). A shared dependency that is away (the database,
  Redis, the media storage: a ``ReelgateError`` with status 503, see ``unavailable``) is nobody's
  fault: it fails the round instead, and the unit's lease comes back.
- **A round**: when one fails, the loop waits ``ROUND_RETRY`` (exponential, jittered, capped)
  before the next (``RoundFailures``), with one log line per failed round.
- **A loop**: ``supervise`` starts a loop again after ``RESTART_RETRY`` when it raised anyway;
  while it is down, and for ``STEADY_S`` after a restart, ``LOOPS`` reports it to ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from reelgate.core.errors import ReelgateError
from reelgate.core.schedule import Backoff
from reelgate.metrics import METRICS

log = logging.getLogger("reelgate.engine")

# The waits of this module, in one place (seconds).
# Between two failed rounds of a loop (the database is away, say).
ROUND_RETRY = Backoff(first=0.5, factor=2.0, cap=30.0)
# Before a loop that stopped on an exception is started again.
RESTART_RETRY = Backoff(first=1.0, factor=2.0, cap=60.0)
# Before a unit that raised is tried again; after MAX_FAULTS in a row it ends.
FAULT_RETRY = Backoff(first=2.0, factor=4.0, cap=600.0)
MAX_FAULTS = 5
# A loop that ran this long since its last restart counts as healthy again.
STEADY_S = 60.0

# What a client sees of a task (or a delivery) that ended on a fault of reelgate's own.
INTERNAL_MESSAGE = "reelgate failed while handling this task; the error is logged for the operator"
INTERNAL_CODE = "internal_error"

# How a loop waits: ``pause(seconds, stop)`` returns after ``seconds`` or once ``stop`` is set.
Pause = Callable[[float, asyncio.Event | None], Awaitable[None]]


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Wait ``seconds`` of wall time, or less if ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def unavailable(exc: BaseException) -> bool:
    """A shared dependency is away (database, Redis, storage, upstream): retry the round."""
    return isinstance(exc, ReelgateError) and exc.http_status == 503


async def settle_all(work: Iterable[Awaitable[None]]) -> None:
    """Run every awaitable to its end, then raise the first failure among them (if any).

    Unlike a bare ``gather``, nothing is left running when one of them fails."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def log_fault(
    loop: str,
    unit: str,
    exc: BaseException,
    fault: int = 1,
    limit: int = 1,
    retry: float | None = None,
    *,
    then: str | None = None,
    trace: bool = True,
) -> None:
    """One line, with the traceback unless it was logged already, for a unit that raised (ids
    come from ``logs.bound``): which fault of how many, and what happens next (``then``, by
    default a retry in ``retry`` seconds or the end with ``internal_error``)."""
    METRICS.engine_faults.labels(loop).inc()
    if then is None:
        then = f"retrying in {retry:.1f} s" if retry is not None else f"ending: {INTERNAL_CODE}"
    log.error(
        "%s raised %s (fault %d of %d); %s",
        unit,
        type(exc).__name__,
        fault,
        limit,
        then,
        exc_info=exc if trace else None,
        extra={"loop": loop},
    )


class FaultCounter:
    """Consecutive faults per unit (a task or delivery id) in this process; bounded in size."""

    def __init__(self, limit: int = 10_000) -> None:
        self._counts: dict[str, int] = {}
        self._limit = limit

    def add(self, key: str) -> int:
        """Count one more fault of ``key``; returns how many in a row."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self._limit:
            del self._counts[next(iter(self._counts))]  # the longest-untouched
        return count

    def clear(self, key: str) -> None:
        self._counts.pop(key, None)

    def __getitem__(self, key: str) -> int:
        return self._counts.get(key, 0)


class RoundFailures:
    """The failed rounds in a row of one loop, and how long to wait after each."""

    def __init__(
        self, loop: str, *, retry: Backoff = ROUND_RETRY, rng: random.Random | None = None
    ) -> None:
        self.loop = loop
        self.retry = retry
        self.rng = rng
        self.count = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed round; the seconds to wait before the next one."""
        delay = self.retry.delay(self.count, self.rng)
        self.count += 1
        METRICS.round_failures.labels(self.loop).inc()
        if isinstance(exc, ReelgateError):  # an expected kind (the store is away): no trace
            log.error(
                "%s round failed (%s: %s); next round in %.1f s",
                self.loop,
                exc.code,
                exc.message,
                delay,
                extra={"loop": self.loop, "failed_rounds": self.count},
            )
        else:
            log.error(
                "%s round raised %s; next round in %.1f s",
                self.loop,
                type(exc).__name__,
                delay,
                exc_info=exc,
                extra={"loop": self.loop, "failed_rounds": self.count},
            )
        return delay

    def succeeded(self) -> None:
        if self.count:
            log.warning(
                "%s rounds work again after %d failed",
                self.loop,
                self.count,
                extra={"loop": self.loop},
            )
            self.count = 0


async def rounds(
    loop: str,
    tick: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    *,
    due: asyncio.Event,
    idle_s: float,
    busy: int,
    wait: Pause = pause,
) -> None:
    """An outbox loop (webhooks, media copies): ``tick`` until ``stop`` is set; again at once
    after a round that handled ``busy`` units or more, else once ``due`` is set or after
    ``idle_s``; after a failed round, a back-off (``RoundFailures``)."""
    failures = RoundFailures(loop)
    while not stop.is_set():
        try:
            handled = await tick()
        except Exception as exc:  # the store is away, or a bug outside any one unit
            await wait(failures.failed(exc), stop)
            continue
        failures.succeeded()
        if handled >= busy:
            continue
        due.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(due.wait(), idle_s)


@dataclass(slots=True)
class LoopState:
    """One running loop, as readiness sees it."""

    name: str
    owner: str
    restarts: int = 0
    down_since: float | None = None
    restarted_at: float | None = None
    last_error: str = ""

    def problem(self, now: float) -> str | None:
        if self.down_since is not None:
            return (
                f"the {self.name} loop stopped {max(0.0, now - self.down_since):.0f} s ago on "
                f"{self.last_error} and is being restarted (restart {self.restarts})"
            )
        if self.restarted_at is not None and now - self.restarted_at < STEADY_S:
            return (
                f"the {self.name} loop was restarted {self.restarts} times, last after "
                f"{self.last_error}"
            )
        return None


class LoopHealth:
    """The loops of this process (the worker's, the webhook sender's, the mirror's…)."""

    def __init__(self) -> None:
        self._loops: dict[int, LoopState] = {}
        self._ids = itertools.count()

    def enter(self, name: str, owner: str = "") -> tuple[int, LoopState]:
        key = next(self._ids)
        state = self._loops[key] = LoopState(name, owner)
        return key, state

    def leave(self, key: int) -> None:
        self._loops.pop(key, None)

    def problems(self, now: float, owner: str | None = None) -> list[str]:
        """What is wrong with the loops (of ``owner`` only, when given)."""
        found = []
        for state in list(self._loops.values()):
            if owner is not None and state.owner != owner:
                continue
            problem = state.problem(now)
            if problem is not None:
                found.append(problem)
        return found


LOOPS = LoopHealth()


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    stop: asyncio.Event | None = None,
    *,
    owner: str = "",
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    wait: Pause = pause,
    health: LoopHealth = LOOPS,
    retry: Backoff = RESTART_RETRY,
) -> None:
    """Run ``body`` until it returns (or ``stop`` is set); start it again, after a back-off, each
    time it raises. Cancellation ends it."""
    key, state = health.enter(name, owner)
    failures = 0
    try:
        while stop is None or not stop.is_set():
            started = clock()
            try:
                await body()
                return
            except Exception as exc:  # whatever stopped the loop: start it again
                now = clock()
                if now - started >= STEADY_S:
                    failures = 0  # it had been running well: start over from a short wait
                delay = retry.delay(failures, rng)
                failures += 1
                state.restarts += 1
                state.down_since = now
                state.last_error = type(exc).__name__
                METRICS.loop_restarts.labels(name).inc()
                log.error(
                    "the %s loop stopped on %s; starting it again in %.1f s",
                    name,
                    type(exc).__name__,
                    delay,
                    exc_info=exc,
                    extra={"loop": name, "restarts": state.restarts},
                )
                await wait(delay, stop)
                state.down_since = None
                state.restarted_at = clock()
    finally:
        health.leave(key)


async def supervised_rounds(
    loop: str,
    tick: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    *,
    due: asyncio.Event,
    idle_s: float,
    busy: int,
    owner: str,
    clock: Callable[[], float],
    wait: Pause = pause,
) -> None:
    """An outbox loop's ``rounds`` under ``supervise``: restarted if it ever dies, and shown in
    readiness meanwhile (the webhook sender and the media mirror run one each)."""
    await supervise(
        loop,
        lambda: rounds(loop, tick, stop, due=due, idle_s=idle_s, busy=busy, wait=wait),
        stop,
        owner=owner,
        clock=clock,
        wait=wait,
    )
