"""The small interface every upstream implements, and the registry that routes models to them.

A provider translates a ``NormalizedRequest`` into its upstream's dialect and the upstream's task
back into an ``Observation``. It raises only reelgate errors: ``ClientError`` when the request
itself is refused, ``UpstreamError`` when the upstream cannot help right now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from reelgate.core.accounts import AdmissionCaps
from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.channels import Channel
from reelgate.core.errors import InvalidRequest, UpstreamUnavailable
from reelgate.core.lifecycle import CallbackHint, Observation


class Provider(Protocol):
    """One upstream account of one provider (a provider with two API keys is two instances)."""

    name: str
    account: str
    # Admission caps and request rate of this account (the engine enforces them).
    caps: AdmissionCaps

    def models(self) -> Sequence[ModelCapabilities]:
        """The models this provider serves, with what each can do."""

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        """Start the work upstream; return the upstream's id for it.

        ``callback_url``, when given, is where the upstream may report status changes (a hint the
        engine confirms with a look-up, never trusted as is).
        """

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        """The upstream id of work an earlier ``submit`` of this task created, if any.

        Called before re-submitting a task whose earlier attempt may have reached the upstream
        (a crash or a lost reply after ``since``): re-sending blindly could make a second paid
        video. Raises ``UpstreamError`` when it cannot tell (the engine then waits and retries).
        """

    async def fetch_many(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        """Look up many tasks at once.

        An id missing from the answer is unknown upstream; an id mapped to ``None`` was seen but
        could not be understood (an unknown status string): look again later.
        """

    async def cancel(self, upstream_id: str) -> None:
        """Cancel upstream work, or raise ``Conflict`` when it can no longer be cancelled."""

    def parse_callback(self, body: bytes) -> CallbackHint | None:
        """What a callback body claims (a hint to confirm, never trusted as is)."""

    async def probe(self) -> None:
        """One cheap authenticated call; raises the upstream's error when the account can't work
        (used to re-enable a channel its health disabled)."""

    async def close(self) -> None: ...


class Registry:
    """Which provider serves which model, and the accounts of each provider."""

    def __init__(
        self,
        providers: Sequence[Provider],
        unconfigured: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        channels: Sequence[Channel] = (),
    ) -> None:
        """``providers`` in order of preference; ``unconfigured`` maps model names reelgate
        knows but cannot serve to the fix; ``aliases`` maps other names (Ark endpoint ids
        ``ep-…``, short names) to model names; ``channels`` describes the accounts (routing,
        health) — an account without one is a built-in channel that takes every model."""
        self._aliases = dict(aliases or {})
        self._accounts: dict[str, dict[str, Provider]] = {}
        described = {(c.provider, c.name): c for c in channels}
        self._channels: dict[tuple[str, str], Channel] = {}
        for p in providers:
            self._accounts.setdefault(p.name, {})[p.account] = p
            self._channels[(p.name, p.account)] = described.get(
                (p.name, p.account),
                Channel(name=p.account, provider=p.name, source="builtin", caps=p.caps),
            )
        self.providers = {
            name: next(iter(accts.values())) for name, accts in self._accounts.items()
        }
        self._unconfigured = dict(unconfigured or {})
        self._models: dict[str, tuple[Provider, ModelCapabilities]] = {}
        self._names: dict[str, tuple[Provider, ModelCapabilities]] = {}
        for provider in self.providers.values():
            for caps in provider.models():
                self._models[caps.name] = (provider, caps)
                for name in (caps.name, *caps.aliases):
                    self._names[name] = (provider, caps)

    def resolve(self, model: str) -> tuple[Provider, ModelCapabilities]:
        model = self._aliases.get(model, model)
        found = self._names.get(model)
        if found is None and model in self._unconfigured:
            raise InvalidRequest(
                f"model '{model}' is not configured on this gateway: {self._unconfigured[model]}",
                code="model_not_configured",
                param="model",
            )
        if found is None:
            known = ", ".join(sorted(self._models)) or "none configured"
            raise InvalidRequest(
                f"unknown model '{model}' (available: {known})",
                code="model_not_found",
                param="model",
            )
        return found

    def provider(self, name: str) -> Provider | None:
        """The provider's first (preferred) account."""
        return self.providers.get(name)

    def account(self, name: str, account: str | None) -> Provider | None:
        """The given account of a provider (``None``: its preferred one)."""
        if account is None:
            return self.provider(name)
        return self._accounts.get(name, {}).get(account)

    def accounts(self, name: str) -> list[Provider]:
        return list(self._accounts.get(name, {}).values())

    def all_accounts(self) -> list[Provider]:
        return [p for accts in self._accounts.values() for p in accts.values()]

    def channel(self, name: str, account: str) -> Channel | None:
        return self._channels.get((name, account))

    def channels(self, name: str) -> list[Channel]:
        """The provider's channels this process can use (it has their keys)."""
        return [self._channels[(name, a)] for a in self._accounts.get(name, {})]

    def check_routable(self, name: str, model: str) -> None:
        """Refuse a model no channel of the provider serves, or whose channels are all disabled
        (a task would only wait for its deadline)."""
        chans = [c for c in self.channels(name) if c.models is None or self._serves(c, model)]
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

    def _serves(self, channel: Channel, model: str) -> bool:
        return channel.models is not None and model in {self.canonical(m) for m in channel.models}

    def canonical(self, model: str) -> str:
        """The catalogue name of ``model`` (through aliases), or ``model`` when unknown."""
        model = self._aliases.get(model, model)
        found = self._names.get(model)
        return found[1].name if found else model

    def models(self) -> list[ModelCapabilities]:
        return [caps for _, caps in self._models.values()]

    async def close(self) -> None:
        for provider in self.all_accounts():
            await provider.close()
