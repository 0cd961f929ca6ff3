"""Prices and charges in an integer currency unit: which price applies to a request, what it is
estimated to cost before it runs, and what it costs once the upstream reports its usage.

A model's prices are rules. Each has one price, per million tokens, per second of video or per
task, and optional conditions on the request: ``resolution``, ``service_tier``, ``audio`` and
``video_input``, and on where it runs: ``provider`` (an aggregator's price for a model differs
from its studio's). The most specific matching rule wins (the one with the most conditions);
rules that name a provider apply only there, and there they come first (the rules naming none
apply where none of that provider's matches). Every priced model has one rule without
conditions (its base price), and two rules that could both be the most specific for one request
are refused when the table is parsed. Money is never a float:
amounts are integers, and every division rounds up (``ceil``).

A task that may run on several providers is pre-charged the most expensive of their prices (its
``Offer``s), and settled on the offer of the provider that served it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.errors import ConfigError

Unit = Literal["per_million_tokens", "per_second", "per_task"]
UNITS: tuple[Unit, ...] = ("per_million_tokens", "per_second", "per_task")
CONDITIONS = ("resolution", "service_tier", "audio", "video_input", "provider")
TIERS = ("default", "flex")
# Far above any real price, far below where an amount could overflow a 64-bit column.
MAX_PRICE = 10**12
# Ark's output: 24 frames a second, plus one (a 5 s video has 121 frames).
FPS = 24
TOKEN_PIXELS = 1024
MILLION = 1_000_000

# Ledger kinds. A task has at most one ``precharge`` and at most one closing entry (``settle`` on
# success, ``refund`` on failure, cancel or expiry); the database enforces both.
GRANT, ADJUST, PRECHARGE, SETTLE, REFUND = "grant", "adjust", "precharge", "settle", "refund"
KINDS = (GRANT, ADJUST, PRECHARGE, SETTLE, REFUND)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class PriceFacts:
    """What a price depends on, as the upstream will really produce the video."""

    resolution: str
    service_tier: str
    audio: bool
    video_input: bool
    seconds: int
    tokens: int
    provider: str = ""  # where it runs ("": not known, so no provider's own rule applies)

    def value(self, condition: str) -> str | bool:
        return cast(str | bool, getattr(self, condition))


@dataclass(frozen=True, slots=True)
class PriceRule:
    unit: Unit
    price: int
    when: tuple[tuple[str, str | bool], ...] = ()

    def matches(self, facts: PriceFacts) -> bool:
        return all(facts.value(key) == wanted for key, wanted in self.when)

    def describe(self) -> dict[str, Any]:
        return {self.unit: self.price, "when": dict(self.when)}


@dataclass(frozen=True, slots=True)
class Offer:
    """The estimated cost of a request on one provider, under that provider's rule."""

    provider: str
    rule: PriceRule
    quantity: int
    amount: int


@dataclass(frozen=True, slots=True)
class Charge:
    """The estimated cost of one request under one rule (what a create pre-charges)."""

    model: str
    rule: PriceRule
    quantity: int  # estimated tokens, seconds of video, or 1 task
    amount: int
    tokens: int  # estimated tokens, whatever the unit
    # Per provider the task may run on, when the model's price depends on it: the charge is
    # the most expensive of them, and the task settles on its serving provider's.
    offers: tuple[Offer, ...] = ()

    def offer(self, provider: str) -> Offer | None:
        return next((o for o in self.offers if o.provider == provider), None)


@dataclass(frozen=True, slots=True)
class Closing:
    """The ledger entry that closes a pre-charged task (``amount`` is signed, as in the ledger)."""

    kind: str
    amount: int
    quantity: int | None


@dataclass(frozen=True, slots=True)
class Balance:
    amount: int
    limited: bool  # a quota is set: creates that cost more than ``amount`` are refused


def cost(unit: str, price: int, quantity: int) -> int:
    if unit == "per_million_tokens":
        return ceil_div(quantity * price, MILLION)
    return quantity * price


def close(
    unit: str,
    price: int,
    precharged: int,
    *,
    succeeded: bool,
    usage_tokens: int | None,
    usage_seconds: float | None = None,
    estimate: tuple[int, int] | None = None,
) -> Closing:
    """How a pre-charge of ``precharged`` closes: failures are refunded in full; a success is
    settled to the cost of what the upstream says it made (tokens, or seconds of video for a
    per-second price, started seconds counted whole), or to the estimate without it: the
    pre-charge itself, or ``estimate`` (the serving provider's estimated amount and quantity,
    under ``unit`` and ``price``) when the pre-charge was another provider's."""
    if not succeeded:
        return Closing(REFUND, precharged, None)
    if unit == "per_million_tokens" and usage_tokens is not None:
        return Closing(SETTLE, precharged - cost(unit, price, usage_tokens), usage_tokens)
    if unit == "per_second" and usage_seconds is not None and usage_seconds >= 0:
        made = math.ceil(usage_seconds - 1e-9)
        return Closing(SETTLE, precharged - cost(unit, price, made), made)
    if estimate is not None:
        amount, quantity = estimate
        return Closing(SETTLE, precharged - amount, quantity)
    return Closing(SETTLE, 0, None)


def facts(request: NormalizedRequest, caps: ModelCapabilities, provider: str = "") -> PriceFacts:
    """The priced facts of a normalized request (defaults applied, in-prompt flags lifted) on
    ``provider``."""
    options = request.options
    width, height = request.width, request.height
    resolution = str(options.get("resolution") or "")
    if not (width and height):
        # An "adaptive" ratio is chosen upstream: estimate the largest frame it may pick.
        sizes = caps.extra.get("sizes", {}).get(resolution) or []
        pairs = [tuple(int(x) for x in s.split("x")) for s in sizes] or [caps.default_size]
        width, height = max(pairs, key=lambda p: p[0] * p[1])
    if not resolution:
        resolution = f"{min(width, height)}p"
    duration = caps.max_duration if request.duration == -1 else request.duration
    frames = int(options.get("frames") or FPS * duration + 1)
    seconds = ceil_div(frames - 1, FPS) if "frames" in options else duration
    audio = bool(options.get("generate_audio", True)) if "generate_audio" in caps.options else False
    return PriceFacts(
        resolution=resolution,
        service_tier=str(options.get("service_tier", "default")),
        audio=audio,
        # No surface takes reference videos yet (Seedance 2.x video inputs): rules with
        # ``video_input = true`` apply once requests can carry them.
        video_input=False,
        seconds=seconds,
        tokens=ceil_div(width * height * frames, TOKEN_PIXELS),
        provider=provider,
    )


class PriceTable:
    """Each priced model's rules; a model without rules is free."""

    def __init__(self, rules: Mapping[str, tuple[PriceRule, ...]] | None = None) -> None:
        self._rules = dict(rules or {})

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def models(self) -> list[str]:
        return sorted(self._rules)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PriceTable:
        """Rules from settings: ``{model: [{"per_million_tokens": 16000000}, {"audio": false,
        "per_million_tokens": 8000000}]}`` (one rule may be given without the list). Raises
        ``ValueError`` with a one-line reason."""
        rules: dict[str, tuple[PriceRule, ...]] = {}
        for model, given in raw.items():
            listed = [given] if isinstance(given, Mapping) else given
            if not isinstance(listed, list) or not listed:
                raise ValueError(f"model '{model}': give a list of price rules")
            parsed = tuple(_rule(model, i, r) for i, r in enumerate(listed, 1))
            _check_rules(model, parsed)
            rules[model] = parsed
        return cls(rules)

    def renamed(self, name: Callable[[str], str]) -> PriceTable:
        """The same rules under each model's canonical name (``name`` maps aliases)."""
        out: dict[str, tuple[PriceRule, ...]] = {}
        for model, rules in self._rules.items():
            canonical = name(model)
            if canonical in out:
                raise ConfigError(
                    f"invalid setting REELGATE_PRICES: '{model}' and another name of "
                    f"'{canonical}' are both priced"
                )
            out[canonical] = rules
        return PriceTable(out)

    @property
    def providers(self) -> set[str]:
        """The providers the rules' conditions name."""
        return {
            str(value)
            for rules in self._rules.values()
            for rule in rules
            for key, value in rule.when
            if key == "provider"
        }

    def rule_for(self, model: str, seen: PriceFacts) -> PriceRule | None:
        matching = [r for r in self._rules.get(model, ()) if r.matches(seen)]
        own = [r for r in matching if _provider(r)]  # they match: they name seen.provider
        return max(own or matching, key=lambda r: len(r.when), default=None)

    def _offer(self, request: NormalizedRequest, caps: ModelCapabilities, provider: str) -> Offer:
        seen = facts(request, caps, provider)
        rule = self.rule_for(caps.name, seen)
        assert rule is not None  # every priced model has a base rule
        quantity = {"per_million_tokens": seen.tokens, "per_second": seen.seconds, "per_task": 1}[
            rule.unit
        ]
        return Offer(provider, rule, quantity, cost(rule.unit, rule.price, quantity))

    def estimate(
        self,
        request: NormalizedRequest,
        caps: ModelCapabilities,
        providers: Sequence[str] = (),
    ) -> Charge | None:
        """What ``request`` is pre-charged (``None`` for a free model): when the model's price
        depends on the provider, the most expensive of ``providers``' (those the task may be
        routed to), with every one of their offers."""
        rules = self._rules.get(caps.name)
        if rules is None:
            return None
        tokens = facts(request, caps).tokens
        by_provider = any(key == "provider" for rule in rules for key, _ in rule.when)
        if not by_provider or not providers:
            only = self._offer(request, caps, "")
            return Charge(caps.name, only.rule, only.quantity, only.amount, tokens)
        offers = tuple(self._offer(request, caps, p) for p in dict.fromkeys(providers))
        # The first of the most expensive (the home's when it ties): a pre-charge that covers
        # whichever provider serves the task.
        top = max(offers, key=lambda o: o.amount)
        return Charge(caps.name, top.rule, top.quantity, top.amount, tokens, offers)


def _rule(model: str, index: int, raw: Any) -> PriceRule:
    where = f"model '{model}', rule {index}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be an object")
    unknown = sorted(set(raw) - {*UNITS, *CONDITIONS})
    if unknown:
        raise ValueError(
            f"{where}: unknown key '{unknown[0]}' "
            f"(prices: {', '.join(UNITS)}; conditions: {', '.join(CONDITIONS)})"
        )
    units = [u for u in UNITS if u in raw]
    if len(units) != 1:
        raise ValueError(f"{where}: give exactly one of {', '.join(UNITS)}")
    price = raw[units[0]]
    if not isinstance(price, int) or isinstance(price, bool) or not 0 <= price <= MAX_PRICE:
        raise ValueError(
            f"{where}: {units[0]} must be an integer from 0 to {MAX_PRICE} "
            "(amounts are whole currency units, never fractions)"
        )
    when: list[tuple[str, str | bool]] = []
    for key in CONDITIONS:
        if key not in raw:
            continue
        value = raw[key]
        if key in ("audio", "video_input") and not isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be true or false")
        if key == "service_tier" and value not in TIERS:
            raise ValueError(f"{where}: service_tier must be one of {', '.join(TIERS)}")
        if key == "resolution" and (not isinstance(value, str) or not value):
            raise ValueError(f"{where}: resolution must be a name such as 720p")
        if key == "provider" and (not isinstance(value, str) or not value):
            raise ValueError(f"{where}: provider must be a provider's name such as fal")
        when.append((key, value))
    return PriceRule(units[0], price, tuple(when))


def _provider(rule: PriceRule) -> str:
    return next((str(v) for k, v in rule.when if k == "provider"), "")


def _check_rules(model: str, rules: tuple[PriceRule, ...]) -> None:
    """One base rule, and never two rules that could tie as the most specific for a request
    (among the rules naming no provider, and among each provider's own)."""
    if sum(1 for r in rules if not r.when) != 1:
        raise ValueError(f"model '{model}': needs exactly one rule without conditions (its base)")
    for i, a in enumerate(rules):
        for j in range(i + 1, len(rules)):
            b = rules[j]
            if _provider(a) != _provider(b):
                continue  # one provider's rules come before the others there
            both = dict(a.when)
            if len(a.when) != len(b.when) or any(both.get(k, v) != v for k, v in b.when):
                continue  # not equally specific, or never true together
            both.update(b.when)
            if not any(
                len(r.when) > len(a.when) and set(r.when) <= set(both.items()) for r in rules
            ):
                raise ValueError(
                    f"model '{model}': rules {i + 1} and {j + 1} can both apply to one request; "
                    f"add a rule with both conditions ({_conditions(both)})"
                )


def _conditions(when: Mapping[str, str | bool]) -> str:
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in when.items())
