"""Which channels serve which models: the routing table every process rebuilds from its channels.

A **model** is a public name clients use (``doubao-seedance-1-0-pro-250528``); an **offering** is
that model as one provider serves it (its own upstream id and limits). One model may have
offerings on several providers (its studio's API and aggregators): a create is validated against
the model's home offering (the most capable), and routing may choose any channel whose provider's
offering can honour the request. Everything after submission sticks to the channel that created
the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reelgate.core.capabilities import ModelCapabilities
from reelgate.core.channels import Channel, ChannelState
from reelgate.core.errors import InvalidRequest, UpstreamUnavailable
from reelgate.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Offering:
    """A model as one provider serves it."""

    provider: str
    caps: ModelCapabilities


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model: what a create is validated against, and every offering of it."""

    caps: ModelCapabilities
    offerings: tuple[Offering, ...]

    @property
    def name(self) -> str:
        return self.caps.name

    @property
    def provider(self) -> str:
        """The provider of the home offering."""
        return self.caps.provider

    def offering(self, provider: str) -> Offering | None:
        return next((o for o in self.offerings if o.provider == provider), None)


class Registry:
    """The provider instances of this process (one per channel), and the models they offer."""

    def __init__(
        self,
        providers: Sequence[Provider],
        unconfigured: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        channels: Sequence[Channel] = (),
    ) -> None:
        """``providers`` in order of preference; ``unconfigured`` maps model names reelgate
        knows but cannot serve to the fix; ``aliases`` maps other names (Ark endpoint ids
        ``ep-…``, short names) to model names; ``channels`` describes the channels (routing,
        health) — an instance without one is a built-in channel that takes every model."""
        self._aliases = dict(aliases or {})
        described = {c.name: c for c in channels}
        self._instances: dict[str, Provider] = {}
        self._channels: dict[str, Channel] = {}
        for p in providers:
            self._instances.setdefault(p.channel, p)
            self._channels.setdefault(
                p.channel,
                described.get(
                    p.channel,
                    Channel(name=p.channel, provider=p.name, source="builtin", caps=p.caps),
                ),
            )
        self._unconfigured = dict(unconfigured or {})
        # The first instance of each provider answers for its catalogue.
        first: dict[str, Provider] = {}
        for p in self._instances.values():
            first.setdefault(p.name, p)
        self.providers = first
        offered: dict[str, list[Offering]] = {}
        self._names: dict[str, str] = {}
        for provider in first.values():
            for caps in provider.models():
                offered.setdefault(caps.name, []).append(Offering(provider.name, caps))
                for name in (caps.name, *caps.aliases):
                    self._names.setdefault(name, caps.name)
        self._models = {name: _entry(offers) for name, offers in offered.items()}

    # -- models ---------------------------------------------------------------------------------
    def resolve(self, model: str) -> ModelEntry:
        """The model a client names (through aliases), or the 400 that explains why not."""
        model = self._aliases.get(model, model)
        name = self._names.get(model)
        if name is None and model in self._unconfigured:
            raise InvalidRequest(
                f"model '{model}' is not configured on this gateway: {self._unconfigured[model]}",
                code="model_not_configured",
                param="model",
            )
        if name is None:
            known = ", ".join(sorted(self._models)) or "none configured"
            raise InvalidRequest(
                f"unknown model '{model}' (available: {known})",
                code="model_not_found",
                param="model",
            )
        return self._models[name]

    def canonical(self, model: str) -> str:
        """The catalogue name of ``model`` (through aliases), or ``model`` when unknown."""
        model = self._aliases.get(model, model)
        return self._names.get(model, model)

    def models(self) -> list[ModelEntry]:
        return list(self._models.values())

    def describe(self, entry: ModelEntry, now: float) -> dict[str, Any]:
        """A model for ``GET /v1/models``: its home offering's capabilities, then every
        offering with the health of its channels (counted by state: no names, no secrets)."""
        data = entry.caps.describe()
        offerings = []
        for offering in entry.offerings:
            states = {s.value: 0 for s in ChannelState}
            for channel in self.channels_for(entry.name):
                if channel.provider == offering.provider:
                    states[channel.state(now).value] += 1
            offerings.append(
                {
                    "provider": offering.provider,
                    "model": offering.caps.upstream_id,
                    "home": offering.caps.home,
                    "channels": states,
                }
            )
        data["offerings"] = offerings
        return data

    # -- channels -------------------------------------------------------------------------------
    def instance(self, channel: str | None) -> Provider | None:
        """The provider instance of a channel (``None`` when this process has none)."""
        return self._instances.get(channel or "")

    def instance_of(self, name: str, channel: str | None) -> Provider | None:
        """The instance of provider ``name`` for ``channel`` (``None``: its first)."""
        if channel is None:
            return self.providers.get(name)
        found = self._instances.get(channel)
        return found if found is not None and found.name == name else None

    def instances(self) -> list[Provider]:
        return list(self._instances.values())

    def channel(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def channels(self, provider: str | None = None) -> list[Channel]:
        """The channels this process can use (it has their keys), of one provider or all."""
        return [c for c in self._channels.values() if provider is None or c.provider == provider]

    def channels_for(self, model: str) -> list[Channel]:
        """Every usable channel, of any provider, with an offering of ``model`` it serves."""
        entry = self._models.get(self.canonical(model))
        if entry is None:
            return []
        providers = {o.provider for o in entry.offerings}
        return [
            c
            for c in self._channels.values()
            if c.provider in providers and self.serves(c, entry.name)
        ]

    def serves(self, channel: Channel, model: str) -> bool:
        """Whether ``channel`` may take tasks of ``model`` (its model list, through aliases)."""
        return channel.models is None or model in {self.canonical(m) for m in channel.models}

    def check_routable(self, model: str, providers: Sequence[str] | None = None) -> None:
        """Refuse a model no channel serves (of ``providers``, when given), or whose channels
        are all disabled (a task would only wait for its deadline)."""
        chans = [
            c for c in self.channels_for(model) if providers is None or c.provider in providers
        ]
        if not chans:
            raise InvalidRequest(
                f"no channel of this gateway serves model '{model}'",
                code="model_not_configured",
                param="model",
            )
        if not any(c.enabled for c in chans):
            raise UpstreamUnavailable(
                f"every channel that serves model '{model}' is disabled; try again later",
                code="no_channel_available",
                retry_after=60.0,
            )

    async def close(self) -> None:
        for provider in self.instances():
            await provider.close()


def _entry(offers: Sequence[Offering]) -> ModelEntry:
    """The home offering leads (the studio's own API); aggregators follow in their order."""
    ordered = sorted(offers, key=lambda o: not o.caps.home)
    return ModelEntry(ordered[0].caps, tuple(ordered))
