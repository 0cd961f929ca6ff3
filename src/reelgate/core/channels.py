"""Channels as routing sees them, their admission caps, and how a submit error moves a task on.

A channel is one set of credentials for one provider (an Ark API key with its region and
caps). An offering is a model as one channel serves it. Routing
rules, all pure:

- **Selection**: usable channels that serve the model, highest ``priority`` first; within a
  priority, each channel's share of the waiting tasks follows its ``weight``. A lower priority
  only gets what the higher ones have no room for (caps, cool-down, models, earlier failures).
- **Failover** (``verdict``): a submit error that means "this account can't" moves the task to
  the next channel; one that means "this request is bad" ends the task.
- **Health**: auth and account errors disable the channel (a probe or an admin re-enables it);
  a 429 cools it down for a while. Polls, cancels and content of a task always use the channel
  that created it.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# The name of the channel a provider's settings shorthand defines first (REELGATE_ARK_API_KEY).
DEFAULT_CHANNEL = "default"
# How long a channel rests after the upstream said "too many" without a Retry-After (s).
COOL_DOWN_S = 30.0
# How often a channel disabled by its health is tried again (s).
PROBE_INTERVAL_S = 300.0


@dataclass(frozen=True, slots=True)
class AdmissionCaps:
    """Limits per channel; ``None`` means unlimited."""

    # Tasks waiting in the upstream's own queue (Ark: 120 per account).
    max_queued: int | None = None
    # Tasks queued or running upstream together.
    max_in_flight: int | None = None
    # Upstream requests per minute, shared by every worker (a token bucket in the database).
    rpm: int | None = None

    def bucket_rate(self) -> tuple[float, float] | None:
        """(tokens per second, burst) of the account's request bucket, or None when unlimited."""
        if self.rpm is None:
            return None
        # A burst of a tenth of the minute's budget keeps the rate smooth but lets a tick batch.
        return self.rpm / 60.0, max(1.0, self.rpm / 10.0)


class ChannelState(enum.StrEnum):
    ACTIVE = "active"
    COOLING = "cooling"  # rate-limited upstream: no new submissions until ``cooldown_until``
    DISABLED = "disabled"  # by an admin, or by its health (auth/account errors)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    provider: str
    source: str = "config"  # config (settings) | admin (database, key encrypted) | builtin
    region: str = ""
    base_url: str = ""
    priority: int = 0
    weight: int = 1
    models: tuple[str, ...] | None = None  # None: every model of the provider
    caps: AdmissionCaps = field(default_factory=AdmissionCaps)
    # The provider's own options for this channel (validated by its declaration; JSON).
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    enabled: bool = True
    disabled_by: str = ""  # admin | health
    disabled_reason: str = ""
    cooldown_until: float | None = None
    next_probe_at: float | None = None
    last_error: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def serves(self, model: str) -> bool:
        return self.models is None or model in self.models

    def state(self, now: float) -> ChannelState:
        if not self.enabled:
            return ChannelState.DISABLED
        if self.cooldown_until is not None and self.cooldown_until > now:
            return ChannelState.COOLING
        return ChannelState.ACTIVE


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """A channel as the database keeps it: admin channels carry their sealed key."""

    channel: Channel
    api_key_enc: str | None = None


def tried(marks: str) -> set[str]:
    """The channel names in a task's ``tried_channels`` (",a,b,")."""
    return {name for name in marks.split(",") if name}


def with_tried(marks: str, name: str) -> str:
    names = tried(marks) | {name}
    return "," + ",".join(sorted(names)) + ","


def candidates(
    channels: Sequence[Channel], model: str, *, exclude: set[str] | frozenset[str] = frozenset()
) -> list[Channel]:
    """Enabled channels (cooling ones included: they come back) that may still take ``model``."""
    return [c for c in channels if c.enabled and c.serves(model) and c.name not in exclude]


def shares(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split by ``weights``, largest remainders first (the parts sum to ``total``)."""
    weight_sum = sum(weights)
    if weight_sum <= 0 or total <= 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in weights]
    parts = [math.floor(x) for x in exact]
    rest = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)[:rest]:
        parts[i] += 1
    return parts


def admission_plan(
    channels: Sequence[Channel], waiting: int, now: float, rng: random.Random
) -> list[tuple[Channel, int | None]]:
    """In which order the channels of one provider take waiting tasks, and how many at most.

    Per priority (highest first): every active channel once with its weighted share of
    ``waiting``, in a weighted-random order (so no channel is always first), then every one
    again with ``None`` ("whatever is left"), which hands the share of a channel without room
    to its peers before any lower priority sees it.
    """
    active = [c for c in channels if c.state(now) is ChannelState.ACTIVE]
    plan: list[tuple[Channel, int | None]] = []
    for priority in sorted({c.priority for c in active}, reverse=True):
        group = [c for c in active if c.priority == priority]
        # Weighted random order without replacement (Efraimidis-Spirakis keys).
        group.sort(key=lambda c: rng.random() ** (1.0 / max(1, c.weight)), reverse=True)
        plan.extend(zip(group, shares(waiting, [c.weight for c in group]), strict=True))
        plan.extend((c, None) for c in group)
    return plan


class Verdict(enum.Enum):
    """What a failed submit means for the channel and the task."""

    DISABLE = "disable"  # the account can't work at all (auth, overdue): next channel
    COOL_DOWN = "cool_down"  # the account is busy (429): next channel, or this one later
    NEXT = "next"  # this account can't serve this request (model not open, 5xx): next channel
    FAIL = "fail"  # the request itself is refused (validation, moderation): the task ends
    RETRY = "retry"  # a fault with no channel to blame (e.g. unknown): retry later


_VERDICTS = {
    "upstream_auth_failed": Verdict.DISABLE,
    "upstream_account_error": Verdict.DISABLE,
    "upstream_quota_exceeded": Verdict.COOL_DOWN,
    "upstream_rate_limited": Verdict.COOL_DOWN,
    "upstream_model_unavailable": Verdict.NEXT,
    "upstream_unavailable": Verdict.NEXT,
    "upstream_timeout": Verdict.NEXT,
}


def verdict(code: str, *, client_error: bool, transient: bool) -> Verdict:
    """The verdict for a submit error's stable ``code``: ``client_error`` when the request is at
    fault, ``transient`` when trying again later may work."""
    if client_error:
        return Verdict.FAIL
    return _VERDICTS.get(code, Verdict.RETRY if transient else Verdict.FAIL)
