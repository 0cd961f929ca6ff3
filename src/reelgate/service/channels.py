"""Channels at run time: the routing table of every channel, rebuilt from the database.

``ChannelBook`` owns every provider instance made from a channel. Channels come from settings
(the key stays in settings) and from the admin API (the key is sealed with
``REELGATE_ENCRYPTION_KEY`` in the database). Every process rebuilds its registry from the
``channels`` table every few seconds, so a channel added, changed or disabled anywhere reaches
every API replica and worker; the process that changes a channel sees it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from reelgate.core import channels as routing
from reelgate.core.channels import AdmissionCaps, Channel, ChannelState, StoredChannel
from reelgate.core.crypto import SecretBox, fingerprint
from reelgate.core.errors import ConfigError, Conflict, InvalidRequest, NotFound, ReelgateError
from reelgate.providers.base import BuildContext, ChannelDeclaration, Provider, ProviderSpec
from reelgate.providers.registry import Registry
from reelgate.store.base import Store

log = logging.getLogger("reelgate.channels")

# The fields of a channel an update may change that its provider's declaration checks.
_DEFINITION = frozenset({"region", "base_url", "options"})

REFRESH_S = 5.0


@dataclasses.dataclass
class _Live:
    provider: Provider
    signature: tuple[Any, ...]


class ChannelBook:
    def __init__(
        self,
        store: Store,
        *,
        specs: Mapping[str, ProviderSpec],
        builtin: Sequence[Provider] = (),
        configured: Sequence[ChannelDeclaration] = (),
        context: BuildContext | None = None,
        aliases: Mapping[str, str] | None = None,
        box: SecretBox | None = None,
        clock: Callable[[], float] = time.time,
        refresh_s: float = REFRESH_S,
        probe_interval_s: float = routing.PROBE_INTERVAL_S,
    ) -> None:
        """``specs``: every provider declaration this process knows; ``builtin``: instances
        that need no channel row (the sandbox); ``configured``: channels from settings with
        their secrets (checked against their provider's declaration here)."""
        self.store = store
        self.specs = dict(specs)
        self._builtin = list(builtin)
        self._context = context or BuildContext()
        for declared in configured:
            try:
                self.check(declared.channel, declared.secret)
            except InvalidRequest as exc:
                raise ConfigError(
                    f"invalid channel '{declared.channel.name}' in settings: {exc.message}"
                ) from None
        self._configured = {d.channel.name: (d.channel, d.secret) for d in configured}
        self._aliases = dict(aliases or {})
        self._box = box
        self._clock = clock
        self.refresh_s = refresh_s
        self.probe_interval_s = probe_interval_s
        self._live: dict[str, _Live] = {}
        self._retired: list[Provider] = []
        self._listeners: list[Callable[[Registry], None]] = []
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()
        self._unreadable: set[str] = set()
        self.registry = Registry(self._builtin, self._hints(set()), self._aliases)

    def default_caps(self, provider: str) -> AdmissionCaps:
        """The caps a new channel of ``provider`` gets unless it sets its own."""
        spec = self.specs.get(provider)
        return spec.default_caps if spec is not None else AdmissionCaps()

    def check(self, channel: Channel, secret: str | None) -> None:
        """Refuse a channel its provider's declaration does not accept: an unknown provider or
        region, options that don't fit its model, a secret of the wrong form. ``secret`` None:
        not being changed."""
        spec = self.specs.get(channel.provider)
        if spec is None or spec.builtin is not None:
            known = ", ".join(sorted(n for n, s in self.specs.items() if s.builtin is None))
            raise InvalidRequest(
                f"unknown provider '{channel.provider}' (channels exist for: {known})",
                code="invalid_parameter",
                param="provider",
            )
        if channel.region and spec.regions and channel.region not in spec.regions:
            raise InvalidRequest(
                f"provider '{spec.name}' has no region '{channel.region}' (regions: "
                f"{', '.join(spec.regions)})",
                code="invalid_parameter",
                param="region",
            )
        if not spec.base_url(channel):
            raise InvalidRequest(
                f"a channel of provider '{spec.name}' needs a base_url",
                code="missing_parameter",
                param="base_url",
            )
        try:
            spec.parse_options(channel.options)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InvalidRequest(
                f"options.{where}: {err['msg']}",
                code="invalid_parameter",
                param=f"options.{where}" if where else "options",
            ) from None
        if secret is not None and spec.credential is not None:
            try:
                spec.credential.validate(secret)
            except ValueError as exc:
                raise InvalidRequest(str(exc), code="invalid_parameter", param="secret") from None

    def on_change(self, listener: Callable[[Registry], None]) -> None:
        self._listeners.append(listener)

    @property
    def encryption_ready(self) -> bool:
        return self._box is not None

    async def start(self) -> Registry:
        """Record the channels from settings, then build the registry."""
        await self.store.sync_config_channels(
            [c for c, _ in self._configured.values()], self._clock()
        )
        return await self.refresh(force=True)

    async def refresh(self, *, force: bool = False) -> Registry:
        """Rebuild the registry from the database when it is older than ``refresh_s``."""
        if not force and self._clock() - self._refreshed_at < self.refresh_s:
            return self.registry
        async with self._lock:
            stored = await self.store.list_channels()
            self._refreshed_at = self._clock()
            self._rebuild(stored)
        return self.registry

    def _key_of(self, row: StoredChannel) -> str | None:
        c = row.channel
        if c.source == "config":
            found = self._configured.get(c.name)
            return found[1] if found else None  # defined in another process's settings
        if row.api_key_enc is None or self._box is None:
            return None
        try:
            return self._box.open(row.api_key_enc)
        except ConfigError as exc:
            if c.name not in self._unreadable:
                self._unreadable.add(c.name)
                log.error("channel %s is unusable here: %s", c.name, exc.message)
            return None

    def _rebuild(self, stored: Sequence[StoredChannel]) -> None:
        ordered = sorted(stored, key=lambda r: (-r.channel.priority, r.channel.name))
        providers: list[Provider] = []
        described: list[Channel] = []
        live: dict[str, _Live] = {}
        for row in ordered:
            c = row.channel
            spec = self.specs.get(c.provider)
            key = self._key_of(row)
            if spec is None or spec.builtin is not None or key is None:
                continue
            signature = (
                c.provider,
                c.region,
                c.base_url,
                c.caps,
                json.dumps(c.options, sort_keys=True),
                fingerprint(key),
            )
            current = self._live.get(c.name)
            if current is None or current.signature != signature:
                if current is not None:
                    self._retired.append(current.provider)
                try:
                    options = spec.parse_options(c.options)
                    current = _Live(spec.build(c, key, options, self._context), signature)
                except (ValueError, TypeError) as exc:  # e.g. a key no HTTP header can carry
                    # One unusable channel must not take the others down with it.
                    if c.name not in self._unreadable:
                        self._unreadable.add(c.name)
                        log.error("channel %s is unusable: %s", c.name, type(exc).__name__)
                    continue
            live[c.name] = current
            providers.append(current.provider)
            described.append(c)
        for name, gone in self._live.items():
            if name not in live:
                self._retired.append(gone.provider)
        self._live = live
        served = {c.provider for c in described}
        self.registry = Registry(
            [*self._builtin, *providers], self._hints(served), self._aliases, described
        )
        for listener in self._listeners:
            listener(self.registry)

    def _hints(self, served: set[str]) -> dict[str, str]:
        """What to tell a client who names a model of a provider no channel serves here."""
        built = {p.name for p in self._builtin}
        return {
            name: spec.hint()
            for spec in self.specs.values()
            if spec.name not in served and spec.name not in built
            for caps in spec.catalogue()
            for name in (caps.name, *caps.aliases)
        }

    async def keep_fresh(self) -> None:
        """Re-read the channels every ``refresh_s`` until cancelled (API replicas; workers also
        refresh at each round)."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except ReelgateError as exc:
                log.error("cannot re-read the channels: %s", exc.message)

    # -- health (the engine reports what submits taught it) -------------------------------------
    def now(self) -> float:
        return self._clock()

    async def disable(self, name: str, reason: str, *, by: str = "health") -> None:
        now = self._clock()
        probe = now + self.probe_interval_s if by == "health" else None
        found = await self.store.update_channel(
            name,
            now,
            enabled=False,
            disabled_by=by,
            disabled_reason=reason[:500],
            next_probe_at=probe,
            last_error=reason[:500] if by == "health" else "",
        )
        if found is None:
            raise NotFound(f"no channel named '{name}'", code="channel_not_found")
        log.warning("channel %s disabled (%s): %s", name, by, reason)
        await self.refresh(force=True)

    async def cool_down(self, name: str, until: float, reason: str) -> None:
        await self.store.update_channel(
            name, self._clock(), cooldown_until=until, last_error=reason[:500]
        )
        log.warning("channel %s cools down for %.0fs: %s", name, until - self._clock(), reason)
        await self.refresh(force=True)

    async def enable(self, name: str) -> StoredChannel:
        found = await self.store.update_channel(
            name,
            self._clock(),
            enabled=True,
            disabled_by="",
            disabled_reason="",
            cooldown_until=None,
            next_probe_at=None,
        )
        if found is None:
            raise NotFound(f"no channel named '{name}'", code="channel_not_found")
        log.info("channel %s enabled", name)
        await self.refresh(force=True)
        return found

    async def probe(self, name: str) -> tuple[bool, str]:
        """Try a channel with one cheap call: on success a channel its health disabled is
        enabled again, on failure its next probe is scheduled. Returns (ok, error)."""
        row = await self.store.get_channel(name)
        if row is None:
            raise NotFound(f"no channel named '{name}'", code="channel_not_found")
        provider = self._provider_for(row)
        try:
            await provider.probe()
        except ReelgateError as exc:
            now = self._clock()
            await self.store.update_channel(
                name, now, next_probe_at=now + self.probe_interval_s, last_error=exc.message[:500]
            )
            return False, exc.message
        if not row.channel.enabled and row.channel.disabled_by == "health":
            await self.enable(name)
        return True, ""

    def _provider_for(self, row: StoredChannel) -> Provider:
        live = self._live.get(row.channel.name)
        if live is not None:
            return live.provider
        # Disabled channels are in the registry too; this is one this process cannot use.
        raise Conflict(
            f"channel '{row.channel.name}' cannot be used by this process (its key is "
            "missing here, or REELGATE_ENCRYPTION_KEY differs)",
            code="channel_unusable",
        )

    async def probe_due(self) -> int:
        """Probe every channel its health disabled whose next probe is due."""
        now = self._clock()
        due = [
            row.channel.name
            for row in await self.store.list_channels()
            if not row.channel.enabled
            and row.channel.disabled_by == "health"
            and (row.channel.next_probe_at or 0) <= now
            and row.channel.name in self._live
        ]
        for name in due:
            with contextlib.suppress(ReelgateError):
                await self.probe(name)
        return len(due)

    # -- administration -------------------------------------------------------------------------
    async def add(self, channel: Channel, api_key: str) -> StoredChannel:
        self.check(channel, api_key)
        await self.store.add_channel(channel, self._seal(api_key), self._clock())
        await self.refresh(force=True)
        found = await self.store.get_channel(channel.name)
        assert found is not None
        return found

    async def update(self, name: str, fields: Mapping[str, Any]) -> StoredChannel:
        row = await self.store.get_channel(name)
        if row is None:
            raise NotFound(f"no channel named '{name}'", code="channel_not_found")
        changes = dict(fields)
        if row.channel.source == "config" and set(changes) - {"enabled"}:
            raise Conflict(
                f"channel '{name}' is defined in settings; change it there (only enable and "
                "disable work here)",
                code="channel_from_settings",
            )
        definition = {k: v for k, v in changes.items() if k in _DEFINITION}
        if definition or "api_key" in changes:
            changed = dataclasses.replace(row.channel, **definition)
            self.check(changed, changes.get("api_key"))
        if "api_key" in changes:
            changes["api_key_enc"] = self._seal(changes.pop("api_key"))
        found = await self.store.update_channel(name, self._clock(), **changes)
        assert found is not None
        await self.refresh(force=True)
        return found

    async def remove(self, name: str) -> None:
        if not await self.store.delete_channel(name):
            raise NotFound(f"no channel named '{name}'", code="channel_not_found")
        await self.refresh(force=True)

    def _seal(self, api_key: str) -> str:
        if self._box is None:
            raise Conflict(
                "set REELGATE_ENCRYPTION_KEY (16+ characters) so that reelgate can keep "
                "upstream keys encrypted in its database",
                code="encryption_key_missing",
            )
        return self._box.seal(api_key)

    def usable_here(self, name: str) -> bool:
        return name in self._live

    def key_fingerprint(self, name: str) -> str | None:
        """A short hash of the channel's key (tells keys apart without showing them)."""
        live = self._live.get(name)
        return str(live.signature[-1]) if live else None

    def state(self, channel: Channel) -> ChannelState:
        return channel.state(self._clock())

    async def close(self) -> None:
        for provider in {id(p): p for p in self._retired}.values():
            await provider.close()
        self._retired.clear()
        await self.registry.close()
