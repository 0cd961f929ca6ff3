from __future__ import annotations

import random

from reelgate.core.cache import TtlCache
from reelgate.core.schedule import Backoff


def test_backoff_grows_to_the_cap_within_jitter() -> None:
    b = Backoff(first=1.0, factor=2.0, cap=10.0, jitter=0.2)
    rng = random.Random(7)  # noqa: S311 - deterministic jitter for the test
    delays = [b.delay(n, rng) for n in range(8)]
    for n, d in enumerate(delays):
        base = min(10.0, 2.0**n)
        assert base * 0.8 <= d <= base * 1.2
    assert max(delays) <= 12.0


def test_cache_expires_on_the_injected_clock() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(2, lambda: now[0])
    cache.put("a", 1, ttl=5)
    assert cache.get("a") == 1
    now[0] = 5.1
    assert cache.get("a") is None


def test_cache_is_bounded() -> None:
    cache: TtlCache[str, int] = TtlCache(2, lambda: 0.0)
    for i, k in enumerate("abc"):
        cache.put(k, i, ttl=10)
    assert len(cache) == 2
    assert cache.get("a") is None
    assert cache.get("c") == 2
