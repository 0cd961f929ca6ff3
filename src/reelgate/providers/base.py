"""The small interface every upstream implements, and the registry that routes models to them.

A provider translates a ``NormalizedRequest`` into its upstream's dialect and the upstream's task
back into an ``Observation``. It raises only reelgate errors: ``ClientError`` when the request
itself is refused, ``UpstreamError`` when the upstream cannot help right now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.errors import InvalidRequest
from reelgate.core.lifecycle import Observation


class Provider(Protocol):
    name: str

    def models(self) -> Sequence[ModelCapabilities]:
        """The models this provider serves, with what each can do."""

    async def submit(self, task_id: str, request: NormalizedRequest) -> str:
        """Start the work upstream; return the upstream's id for it."""

    async def fetch_many(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        """Look up many tasks at once.

        An id missing from the answer is unknown upstream; an id mapped to ``None`` was seen but
        could not be understood (an unknown status string): look again later.
        """

    async def cancel(self, upstream_id: str) -> None:
        """Cancel upstream work, or raise ``Conflict`` when it can no longer be cancelled."""

    def parse_callback(self, body: bytes) -> str | None:
        """The upstream id named by a callback body (a hint to confirm, never trusted as is)."""

    async def close(self) -> None: ...


class Registry:
    """Which provider serves which model."""

    def __init__(
        self, providers: Sequence[Provider], unconfigured: Mapping[str, str] | None = None
    ) -> None:
        """``unconfigured`` maps model names reelgate knows but cannot serve to the fix."""
        self.providers = {p.name: p for p in providers}
        self._unconfigured = dict(unconfigured or {})
        self._models: dict[str, tuple[Provider, ModelCapabilities]] = {}
        self._names: dict[str, tuple[Provider, ModelCapabilities]] = {}
        for provider in providers:
            for caps in provider.models():
                self._models[caps.name] = (provider, caps)
                for name in (caps.name, *caps.aliases):
                    self._names[name] = (provider, caps)

    def resolve(self, model: str) -> tuple[Provider, ModelCapabilities]:
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
        return self.providers.get(name)

    def models(self) -> list[ModelCapabilities]:
        return [caps for _, caps in self._models.values()]

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
