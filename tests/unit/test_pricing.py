"""Pricing in the core: the facts a price depends on (as the upstream will really produce the
video), which rule applies, estimates in integers rounded up, and how a pre-charge closes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelgate.core import pricing
from reelgate.core.capabilities import ModelCapabilities, normalize
from reelgate.core.errors import ConfigError
from reelgate.core.pricing import Closing, PriceFacts, PriceTable
from reelgate.core.request import VideoRequest
from reelgate.providers.ark import models as ark_models
from reelgate.providers.sandbox.provider import MODELS as SANDBOX
from reelgate.settings import load_settings

ARK = {c.name: c for c in ark_models.capabilities()}
PRO = "doubao-seedance-1-0-pro-250528"
LITE = "doubao-seedance-1-0-lite-t2v-250428"
V15 = "doubao-seedance-1-5-pro-251215"
V2 = "doubao-seedance-2-0-260128"
M = 1_000_000  # the operator's unit here: 1 = 0.000001 CNY

# Ark's table (CNY per million tokens, flex in brackets), in micro-CNY.
TABLE: dict[str, Any] = {
    PRO: [
        {"per_million_tokens": 15 * M},
        {"service_tier": "flex", "per_million_tokens": 7_500_000},
    ],
    V15: [
        {"per_million_tokens": 16 * M},
        {"audio": False, "per_million_tokens": 8 * M},
        {"service_tier": "flex", "per_million_tokens": 8 * M},
        {"service_tier": "flex", "audio": False, "per_million_tokens": 4 * M},
    ],
    V2: [
        {"per_million_tokens": 46 * M},
        {"video_input": True, "per_million_tokens": 28 * M},
        {"resolution": "4k", "per_million_tokens": 60 * M},
        {"resolution": "4k", "video_input": True, "per_million_tokens": 40 * M},
    ],
    "sandbox-t2v": {"per_second": 100},
    "sandbox-i2v": [{"per_task": 250}],
}
PRICES = PriceTable.parse(TABLE)


def caps(name: str) -> ModelCapabilities:
    return ARK.get(name) or next(c for c in SANDBOX if c.name == name)


def estimate(model: str, prompt: str = "a cat", **kw: Any) -> pricing.Charge:
    c = caps(model)
    charge = PRICES.estimate(normalize(VideoRequest(model=model, prompt=prompt, **kw), c), c)
    assert charge is not None
    return charge


def facts(model: str, prompt: str = "a cat", **kw: Any) -> PriceFacts:
    c = caps(model)
    return pricing.facts(normalize(VideoRequest(model=model, prompt=prompt, **kw), c), c)


def test_tokens_as_ark_counts_them() -> None:
    # 1280 x 720 x (24 * 5 + 1) / 1024, the spec's sample
    seen = facts(V2, metadata={"ratio": "16:9", "resolution": "720p"}, duration=5)
    assert (seen.tokens, seen.seconds, seen.resolution) == (108_900, 5, "720p")
    assert estimate(V2, metadata={"ratio": "16:9"}, duration=5).amount == 108_900 * 46


def test_the_in_prompt_resolution_flag_is_priced_as_that_resolution() -> None:
    flagged = facts(V15, prompt="a cat --rs 1080p --rt 16:9")
    assert (flagged.resolution, flagged.tokens) == ("1080p", 1920 * 1080 * 121 // 1024)
    assert flagged == facts(V15, metadata={"resolution": "1080p", "ratio": "16:9"})
    assert flagged.tokens > facts(V15, metadata={"ratio": "16:9"}).tokens


def test_the_duration_the_upstream_will_use() -> None:
    assert facts(V2, metadata={"ratio": "16:9"}).seconds == 5  # the model's default
    auto = facts(V2, metadata={"ratio": "16:9"}, duration=-1)  # "auto": the most it can make
    assert (auto.seconds, auto.tokens) == (15, 1280 * 720 * 361 // 1024)
    assert facts(V2, prompt="a cat --dur 10", metadata={"ratio": "16:9"}).seconds == 10
    frames = facts(LITE, metadata={"frames": 29})  # frames win over duration on 1.0
    assert (frames.seconds, frames.tokens) == (2, pricing.ceil_div(1248 * 704 * 29, 1024))


def test_an_adaptive_ratio_is_estimated_at_the_largest_frame() -> None:
    adaptive = facts(V2)  # ratio chosen upstream: 21:9 is the largest 720p frame
    assert adaptive.tokens == pricing.ceil_div(1680 * 720 * 121, 1024)
    assert adaptive.tokens > facts(V2, metadata={"ratio": "16:9"}).tokens


def test_audio_is_on_by_default_where_a_model_makes_it() -> None:
    assert facts(V15).audio is True
    assert facts(V15, metadata={"generate_audio": False}).audio is False
    assert facts(PRO).audio is False  # 1.0 is silent


def test_the_most_specific_rule_wins_for_every_ark_dimension() -> None:
    assert estimate(PRO).rule.price == 15 * M
    assert estimate(PRO, metadata={"service_tier": "flex"}).rule.price == 7_500_000
    assert estimate(V15).rule.price == 16 * M  # audio
    assert estimate(V15, metadata={"generate_audio": False}).rule.price == 8 * M
    assert estimate(V15, metadata={"service_tier": "flex"}).rule.price == 8 * M
    flex_silent = estimate(V15, metadata={"service_tier": "flex", "generate_audio": False})
    assert flex_silent.rule.describe() == {
        "per_million_tokens": 4 * M,
        "when": {"service_tier": "flex", "audio": False},
    }
    assert estimate(V2, metadata={"resolution": "4k"}).rule.price == 60 * M
    # No surface sends reference videos yet: the video-input rules are matched on the facts.
    base = facts(V2, metadata={"ratio": "16:9"})
    video = PriceFacts(**{**_asdict(base), "video_input": True})
    uhd = PriceFacts(**{**_asdict(video), "resolution": "4k"})
    assert [PRICES.rule_for(V2, f).price for f in (base, video, uhd)] == [46 * M, 28 * M, 40 * M]  # type: ignore[union-attr]


def _asdict(f: PriceFacts) -> dict[str, Any]:
    return {k: getattr(f, k) for k in PriceFacts.__slots__}


def test_other_providers_by_the_second_or_the_task() -> None:
    assert estimate("sandbox-t2v", duration=4).amount == 400
    assert (estimate("sandbox-t2v").quantity, estimate("sandbox-t2v").amount) == (3, 300)
    assert facts("sandbox-t2v", size=(640, 360)).resolution == "360p"


@pytest.mark.parametrize(
    ("unit", "price", "usage", "expected"),
    [
        # success: settled to the usage, rounded up; the difference is refunded or charged
        ("per_million_tokens", 16 * M, 108_900, Closing("settle", 2_000_000 - 1_742_400, 108_900)),
        ("per_million_tokens", 16 * M, 200_000, Closing("settle", 2_000_000 - 3_200_000, 200_000)),
        ("per_million_tokens", 1, 1, Closing("settle", 2_000_000 - 1, 1)),
        # no usage reported: the estimate stands
        ("per_million_tokens", 16 * M, None, Closing("settle", 0, None)),
        ("per_second", 100, 108_900, Closing("settle", 0, None)),
    ],
)
def test_a_success_settles_to_its_usage(
    unit: str, price: int, usage: int | None, expected: Closing
) -> None:
    assert pricing.close(unit, price, 2_000_000, succeeded=True, usage_tokens=usage) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (8.0, Closing("settle", 1000 - 800, 8)),  # made less than estimated: the rest back
        (7.2, Closing("settle", 1000 - 800, 8)),  # a started second counts whole
        (10.0, Closing("settle", 0, 10)),
        (12.0, Closing("settle", 1000 - 1200, 12)),  # made more: the difference is charged
        (None, Closing("settle", 0, None)),  # not reported: the estimate stands
        (-1.0, Closing("settle", 0, None)),  # nonsense from upstream: the estimate stands
    ],
)
def test_a_per_second_price_settles_on_the_seconds_made(
    seconds: float | None, expected: Closing
) -> None:
    closing = pricing.close(
        "per_second", 100, 1000, succeeded=True, usage_tokens=None, usage_seconds=seconds
    )
    assert closing == expected


def test_a_failure_is_refunded_in_full() -> None:
    closing = pricing.close("per_million_tokens", 16 * M, 1234, succeeded=False, usage_tokens=99)
    assert closing == Closing("refund", 1234, None)


def test_a_model_without_a_price_is_free() -> None:
    c = ARK["doubao-seedance-2-0-fast-260128"]
    assert PRICES.estimate(normalize(VideoRequest(model=c.name, prompt="x"), c), c) is None
    assert not PriceTable()
    assert PRICES


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"m": [{"per_task": 1.5}]}, "per_task must be an integer"),
        ({"m": [{"per_task": "3"}]}, "per_task must be an integer"),
        ({"m": [{"per_task": -1}]}, "per_task must be an integer"),
        ({"m": [{"per_task": 1, "per_second": 2}]}, "exactly one of"),
        ({"m": [{"audio": True, "per_task": 1}]}, "exactly one rule without conditions"),
        ({"m": [{"per_task": 1}, {"per_task": 2}]}, "exactly one rule without conditions"),
        ({"m": [{"per_task": 1}, {"tier": "flex", "per_task": 2}]}, "unknown key 'tier'"),
        ({"m": [{"per_task": 1}, {"service_tier": "slow", "per_task": 2}]}, "service_tier"),
        ({"m": [{"per_task": 1}, {"audio": "no", "per_task": 2}]}, "audio must be"),
        ({"m": []}, "a list of price rules"),
        (
            {
                "m": [
                    {"per_task": 1},
                    {"audio": False, "per_task": 2},
                    {"resolution": "4k", "per_task": 3},
                ]
            },
            "rules 2 and 3 can both apply",
        ),
        (
            {
                "m": [
                    {"per_task": 1},
                    {"audio": False, "per_task": 2},
                    {"audio": False, "per_task": 3},
                ]
            },
            "rules 2 and 3 can both apply",
        ),
    ],
)
def test_a_bad_table_is_refused_with_one_line(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says) as info:
        PriceTable.parse(table)
    assert "\n" not in str(info.value)


def test_rules_that_never_apply_together_are_fine() -> None:
    PriceTable.parse(
        {"m": [{"per_task": 1}, {"audio": False, "per_task": 2}, {"audio": True, "per_task": 3}]}
    )


def test_prices_setting_is_validated_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELGATE_PRICES", '{"sandbox-t2v": [{"per_second": 0.5}]}')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.message.startswith("invalid setting REELGATE_PRICES: ")
    assert "model 'sandbox-t2v', rule 1" in info.value.message
    assert "\n" not in info.value.message
    (tmp_path / "reelgate.toml").write_text(
        'billing_currency = "µCNY"\n[prices]\n"sandbox-t2v" = [{per_second = 100},'
        ' {resolution = "720p", per_second = 300}]\n'
    )
    monkeypatch.delenv("REELGATE_PRICES")
    s = load_settings()
    assert s.billing_currency == "µCNY"
    assert s.price_table.models == ["sandbox-t2v"]


def test_two_names_of_one_model_cannot_both_be_priced() -> None:
    table = PriceTable.parse({"a": {"per_task": 1}, "b": {"per_task": 2}})
    with pytest.raises(ConfigError, match="both priced"):
        table.renamed(lambda _: "same")
