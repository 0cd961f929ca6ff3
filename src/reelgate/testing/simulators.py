"""The simulators ``reelgate simulate NAME`` starts, by name: each provider declaration's own
(``ProviderSpec.simulator`` names its ``SimulatorEntry``), built-in and installed alike.

An entry builds its simulator from the command's options (every simulator accepts exactly the
keys it is given) and says what to point at it. Building imports the simulator only then, so
reading the table is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reelgate.providers import plugins
from reelgate.testing.simulator.base import UpstreamSimulator

__all__ = ["ARK_SIMULATOR", "SimulatorEntry", "SimulatorOptions", "load", "simulators"]


@dataclass(frozen=True)
class SimulatorOptions:
    keys: frozenset[str]
    queued_seconds: float | None = None  # None: the simulator's own default
    running_seconds: float | None = None


@dataclass(frozen=True)
class SimulatorEntry:
    name: str
    build: Callable[[SimulatorOptions], UpstreamSimulator]
    # What to do with the simulator's base URL, e.g. "point REELGATE_ARK_BASE_URL at it".
    usage: str


def _ark(options: SimulatorOptions) -> UpstreamSimulator:
    from reelgate.testing.ark_simulator import ArkSimulator

    sim = ArkSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ARK_SIMULATOR = SimulatorEntry(
    "ark", _ark, "point REELGATE_ARK_BASE_URL (or a channel's base_url) at it"
)


def load(reference: str) -> Any:
    """The object a declaration names as ``"module:attribute"``."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def simulators() -> dict[str, SimulatorEntry]:
    """Every declared provider's simulator, by provider name."""
    found: dict[str, SimulatorEntry] = {}
    for spec in plugins.specs().values():
        if spec.simulator:
            entry = load(spec.simulator)
            if isinstance(entry, SimulatorEntry):
                found[spec.name] = entry
    return found
