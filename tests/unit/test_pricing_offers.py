"""Prices per offering: a rule may name the provider it applies on; a task that may run on
several providers is pre-charged the most expensive of their prices and settled on the price
of the one that served it."""

from __future__ import annotations

import pytest

from reelgate.core import pricing
from reelgate.core.capabilities import normalize
from reelgate.core.pricing import PriceTable
from reelgate.core.request import VideoRequest
from reelgate.providers.ark import models as ark_models
from tests.unit.test_pricing import PRO, TABLE, M

FAL_PER_S = 120_000  # 0.12 CNY a second
SEEDANCE = [*TABLE[PRO], {"provider": "fal", "per_second": FAL_PER_S}]
ARK_CAPS = next(c for c in ark_models.capabilities() if c.name == PRO)


def request(**kw: object) -> pricing.NormalizedRequest:
    return normalize(VideoRequest(model=PRO, prompt="a fox", **kw), ARK_CAPS)  # type: ignore[arg-type]


def test_a_provider_rule_applies_on_that_provider_only() -> None:
    table = PriceTable.parse({PRO: SEEDANCE})
    on_fal = pricing.facts(request(), ARK_CAPS, "fal")
    on_ark = pricing.facts(request(), ARK_CAPS, "ark")
    fal_rule, ark_rule = table.rule_for(PRO, on_fal), table.rule_for(PRO, on_ark)
    assert fal_rule is not None
    assert ark_rule is not None
    assert (fal_rule.unit, fal_rule.price) == ("per_second", FAL_PER_S)
    assert (ark_rule.unit, ark_rule.price) == ("per_million_tokens", 15 * M)


def test_a_providers_rules_come_before_the_others_there() -> None:
    """A flex request on fal takes fal's price (the flex rule names no provider), and the two
    one-condition rules are no tie: one provider's rules come first on it."""
    table = PriceTable.parse({PRO: SEEDANCE})
    flex = request(metadata={"service_tier": "flex"})
    on_fal = table.rule_for(PRO, pricing.facts(flex, ARK_CAPS, "fal"))
    on_ark = table.rule_for(PRO, pricing.facts(flex, ARK_CAPS, "ark"))
    assert on_fal is not None
    assert on_ark is not None
    assert on_fal.price == FAL_PER_S
    assert on_ark.price == 7_500_000
    # Within one provider's rules, a tie is refused as anywhere else.
    tie = [
        {"per_second": 1},
        {"provider": "fal", "resolution": "720p", "per_second": 2},
        {"provider": "fal", "service_tier": "flex", "per_second": 3},
    ]
    with pytest.raises(ValueError, match="rules 2 and 3 can both apply"):
        PriceTable.parse({PRO: tie})


def test_a_provider_condition_must_name_one() -> None:
    with pytest.raises(ValueError, match="provider must be"):
        PriceTable.parse({PRO: [{"per_second": 1}, {"provider": "", "per_second": 2}]})
    assert PriceTable.parse({PRO: SEEDANCE}).providers == {"fal"}


def test_the_estimate_is_the_most_expensive_offer_with_each_one_kept() -> None:
    table = PriceTable.parse({PRO: SEEDANCE})
    normalized = request(duration=10)
    charge = table.estimate(normalized, ARK_CAPS, ["ark", "fal"])
    assert charge is not None
    ark = charge.offer("ark")
    fal = charge.offer("fal")
    assert ark is not None
    assert fal is not None
    tokens = pricing.facts(normalized, ARK_CAPS).tokens
    assert ark.amount == pricing.ceil_div(tokens * 15 * M, M)
    assert (fal.quantity, fal.amount) == (10, 10 * FAL_PER_S)
    top = max(ark, fal, key=lambda o: o.amount)
    assert (charge.amount, charge.rule, charge.quantity) == (top.amount, top.rule, top.quantity)
    # On Ark alone there is nothing to choose: no offers kept.
    alone = table.estimate(normalized, ARK_CAPS, ["ark"])
    assert alone is not None
    assert alone.amount == ark.amount
    # A table that names no provider keeps none either (the pre-charge is the price).
    plain = PriceTable.parse({PRO: TABLE[PRO]}).estimate(normalized, ARK_CAPS, ["ark", "fal"])
    assert plain is not None
    assert plain.offers == ()


def test_a_success_without_usage_settles_on_the_serving_providers_estimate() -> None:
    closing = pricing.close(
        "per_second", FAL_PER_S, 900, succeeded=True, usage_tokens=None, estimate=(600, 5)
    )
    assert (closing.kind, closing.amount, closing.quantity) == (pricing.SETTLE, 300, 5)
    # Usage, where the serving provider's unit counts it, wins over the estimate.
    used = pricing.close(
        "per_second", FAL_PER_S, 900, succeeded=True, usage_tokens=None, usage_seconds=4.2,
        estimate=(600, 5),
    )  # fmt: skip
    assert (used.amount, used.quantity) == (900 - 5 * FAL_PER_S, 5)
    refund = pricing.close("per_second", 1, 900, succeeded=False, usage_tokens=None)
    assert (refund.kind, refund.amount) == (pricing.REFUND, 900)
