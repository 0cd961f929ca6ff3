from __future__ import annotations

import itertools
import random

import pytest

from reelgate.core.cache import TtlCache
from reelgate.core.schedule import (
    CALLBACK_COALESCE,
    CALLBACK_COALESCE_PROGRESS,
    CALLBACK_GRID,
    CALLBACK_GRID_PROGRESS,
    TRACKING,
    Backoff,
    TrackingSchedule,
    callback_look,
    deadline,
    estimate,
    learn,
    on_grid,
)
from reelgate.testing import ManualClock


def test_backoff_grows_to_the_cap_within_jitter() -> None:
    b = Backoff(first=1.0, factor=2.0, cap=10.0, jitter=0.2)
    rng = random.Random(7)  # noqa: S311 - deterministic jitter for the test
    delays = [b.delay(n, rng) for n in range(8)]
    for n, d in enumerate(delays):
        base = min(10.0, 2.0**n)
        assert base * 0.8 <= d <= base * 1.2
    assert max(delays) <= 12.0


def test_cache_expires_on_the_injected_clock() -> None:
    clock = ManualClock(0.0)
    cache: TtlCache[str, int] = TtlCache(2, clock)
    cache.put("a", 1, ttl=5)
    assert cache.get("a") == 1
    clock.set(5.1)
    assert cache.get("a") is None


def test_cache_is_bounded() -> None:
    cache: TtlCache[str, int] = TtlCache(2, lambda: 0.0)
    for i, k in enumerate("abc"):
        cache.put(k, i, ttl=10)
    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("c") == 2


def _looks(typical: float, *, callbacks: bool = False, until: float = 400.0) -> list[float]:
    """The look instants of a task submitted at 0 under the default schedule, no jitter."""
    s = TrackingSchedule(jitter=0.0)
    at, looks, out = 0.0, 0, []
    while at < until:
        at = s.next_look(at, submitted_at=0.0, looks=looks, typical=typical, callbacks=callbacks)
        out.append(at)
        looks += 1
    return out


def test_first_look_is_soon_then_closes_in_on_the_typical_duration() -> None:
    looks = _looks(100.0)
    assert looks[0] == 1.0
    before = [t for t in looks if t < 100]
    # halving the remaining time: few looks early, denser near the expected finish
    assert len(before) <= 9
    gaps = [b - a for a, b in itertools.pairwise(before)]
    assert gaps == sorted(gaps, reverse=True)
    assert any(95 <= t <= 100 for t in looks)


def test_after_the_typical_duration_it_backs_off_to_the_cap() -> None:
    looks = _looks(30.0, until=2000)
    gaps = [b - a for a, b in itertools.pairwise(t for t in looks if t > 30)]
    assert gaps[0] <= 3
    assert max(gaps) == TRACKING.cap
    assert gaps == sorted(gaps)


def test_callbacks_make_the_schedule_a_sparse_safety_net() -> None:
    plain = _looks(100.0, until=3000)
    with_callbacks = _looks(100.0, callbacks=True, until=3000)
    assert plain[0] == 1.0  # without callbacks the first look catches instant failures
    # With them the upstream reports the end; the first look waits for 1.5 typical durations.
    assert with_callbacks[0] == 150.0 or with_callbacks[0] == TRACKING.callback_cap
    assert len(with_callbacks) * 3 < len(plain)
    assert max(b - a for a, b in itertools.pairwise(with_callbacks)) == TRACKING.callback_cap


def test_looks_land_on_a_grid_so_batches_form() -> None:
    rng = random.Random(3)  # noqa: S311 - deterministic jitter for the test
    for now in (0.0, 0.3, 17.77, 1234.5):
        for looks in range(6):
            at = TRACKING.next_look(now, submitted_at=0.0, looks=looks, typical=50.0, rng=rng)
            assert at > now
            assert at == on_grid(at, TRACKING.grid) == float(int(at))


def test_callbacks_of_one_window_share_one_look() -> None:
    # Ends reported within one grid window are confirmed together, soon; starts later, coarser.
    ends = [callback_look(100.0 + i * 0.03, final=True) for i in range(10)]  # 100.00-100.27
    assert set(ends) == {100.5}
    for now in (0.0, 0.41, 99.99, 1234.56):
        end = callback_look(now, final=True)
        assert now + CALLBACK_COALESCE <= end < now + CALLBACK_COALESCE + CALLBACK_GRID
        assert end == on_grid(end, CALLBACK_GRID)
        start = callback_look(now, final=False)
        assert now + CALLBACK_COALESCE_PROGRESS <= start
        assert start < now + CALLBACK_COALESCE_PROGRESS + CALLBACK_GRID_PROGRESS
        assert start == on_grid(start, CALLBACK_GRID_PROGRESS)
    starts = {callback_look(100.0 + i * 0.5, final=False) for i in range(6)}  # 100.0-102.5
    assert starts == {105.0}


def test_unknown_models_use_the_default_typical_duration() -> None:
    s = TrackingSchedule(jitter=0.0)
    assert s.next_look(10.0, submitted_at=0.0, looks=1, typical=None) == s.next_look(
        10.0, submitted_at=0.0, looks=1, typical=s.default_typical
    )


def test_learning_is_a_weighted_mean() -> None:
    assert learn(None, 80.0) == 80.0
    assert learn(100.0, 200.0) == pytest.approx(120.0)
    typical = 100.0
    for _ in range(50):
        typical = learn(typical, 30.0)
    assert typical == pytest.approx(30.0, abs=0.1)


def test_deadlines() -> None:
    assert deadline(100.0, max_task_seconds=1000.0) == 1100.0
    # submitted with an upstream expiry: that expiry plus grace, but never past the maximum
    assert deadline(100.0, max_task_seconds=10_000.0, submitted_at=200.0, expires_after=3600) == (
        200.0 + 3600 + 300
    )
    assert deadline(100.0, max_task_seconds=1000.0, submitted_at=200.0, expires_after=3600) == 1100
    assert deadline(100.0, max_task_seconds=1000.0, submitted_at=200.0) == 1100.0


def test_estimates_from_the_typical_duration() -> None:
    assert estimate(terminal=True, started_at=0, typical=100, now=5) == (100, 0)
    assert estimate(terminal=False, started_at=0, typical=100, now=0) == (0, 100)
    assert estimate(terminal=False, started_at=0, typical=100, now=25) == (25, 75)
    assert estimate(terminal=False, started_at=0, typical=100, now=99.5) == (99, 1)
    assert estimate(terminal=False, started_at=0, typical=100, now=500) == (99, 0)  # never 100
