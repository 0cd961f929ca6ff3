"""Channel routing rules (pure): shares by weight, the admission plan, verdicts, sealed keys."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from reelgate.core.channels import (
    Channel,
    ChannelState,
    Verdict,
    admission_plan,
    candidates,
    shares,
    tried,
    verdict,
    with_tried,
)
from reelgate.core.crypto import SecretBox, fingerprint
from reelgate.core.errors import ConfigError


def chan(name: str, **kw: object) -> Channel:
    return Channel(name=name, provider="ark", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, [1, 1], [5, 5]),
        (10, [3, 1], [8, 2]),  # 7.5 / 2.5: the larger remainder first, ties by order
        (7, [1, 1, 1], [3, 2, 2]),
        (0, [2, 1], [0, 0]),
        (5, [1], [5]),
    ],
)
def test_shares_split_by_weight_and_sum_to_the_total(
    total: int, weights: list[int], expected: list[int]
) -> None:
    assert shares(total, weights) == expected
    assert sum(shares(total, weights)) == total


def test_the_plan_serves_higher_priorities_first_and_skips_unusable_channels() -> None:
    now = 100.0
    channels = [
        chan("low", priority=0),
        chan("high-a", priority=5, weight=1),
        chan("high-b", priority=5, weight=1),
        chan("off", priority=9, enabled=False),
        chan("resting", priority=9, cooldown_until=now + 10),
    ]
    plan = admission_plan(channels, 10, now, random.Random(1))  # noqa: S311
    names = [c.name for c, _ in plan]
    assert set(names[:4]) == {"high-a", "high-b"}  # both, with shares then "the rest"
    assert names[4:] == ["low", "low"]
    assert [share for _, share in plan[:2]] == [5, 5]
    assert all(share is None for _, share in plan[2:4])
    assert "off" not in names
    assert "resting" not in names


def test_the_order_within_a_priority_follows_the_weights() -> None:
    channels = [chan("a", weight=3), chan("b", weight=1)]
    firsts = Counter(
        admission_plan(channels, 1, 0.0, random.Random(seed))[0][0].name  # noqa: S311
        for seed in range(4000)
    )
    assert 0.70 < firsts["a"] / 4000 < 0.80  # 3 / (3 + 1)


def test_states_and_candidates() -> None:
    assert chan("x").state(0) is ChannelState.ACTIVE
    assert chan("x", cooldown_until=5.0).state(4.9) is ChannelState.COOLING
    assert chan("x", cooldown_until=5.0).state(5.0) is ChannelState.ACTIVE
    assert chan("x", enabled=False).state(0) is ChannelState.DISABLED
    pool = [
        chan("a", models=("m1",)),
        chan("b"),
        chan("c", enabled=False),
        chan("d", cooldown_until=9.0),
    ]
    assert [c.name for c in candidates(pool, "m1")] == ["a", "b", "d"]
    assert [c.name for c in candidates(pool, "m2", exclude={"b"})] == ["d"]


def test_tried_marks() -> None:
    marks = with_tried(with_tried("", "b"), "a_1")
    assert marks == ",a_1,b,"
    assert tried(marks) == {"a_1", "b"}
    assert with_tried(marks, "b") == marks


@pytest.mark.parametrize(
    ("code", "client_error", "transient", "expected"),
    [
        ("upstream_auth_failed", False, False, Verdict.DISABLE),
        ("upstream_account_error", False, False, Verdict.DISABLE),
        ("upstream_quota_exceeded", False, True, Verdict.COOL_DOWN),
        ("upstream_rate_limited", False, True, Verdict.COOL_DOWN),
        ("upstream_unavailable", False, True, Verdict.NEXT),
        ("upstream_timeout", False, True, Verdict.NEXT),
        ("upstream_model_unavailable", False, False, Verdict.NEXT),
        ("content_moderation", True, False, Verdict.FAIL),
        ("invalid_parameter", True, False, Verdict.FAIL),
        ("upstream_error", False, False, Verdict.FAIL),
        ("store_unavailable", False, True, Verdict.RETRY),
    ],
)
def test_verdicts(code: str, client_error: bool, transient: bool, expected: Verdict) -> None:
    assert verdict(code, client_error=client_error, transient=transient) is expected


def test_a_sealed_key_opens_only_with_the_same_setting() -> None:
    box = SecretBox("correct horse battery staple")
    sealed = box.seal("sk-live-abc123")
    assert "sk-live-abc123" not in sealed
    assert box.open(sealed) == "sk-live-abc123"
    assert box.seal("sk-live-abc123") != sealed  # random IV: equal keys don't look equal
    with pytest.raises(ConfigError, match="REELGATE_ENCRYPTION_KEY differs"):
        SecretBox("another passphrase entirely").open(sealed)
    with pytest.raises(ConfigError, match="at least 16"):
        SecretBox("short")


def test_fingerprints_tell_keys_apart_without_showing_them() -> None:
    assert fingerprint("k1") != fingerprint("k2")
    assert fingerprint("k1") == fingerprint("k1")
    assert len(fingerprint("a much longer secret key")) == len("sha256:") + 12
