"""The simulators ``reelgate simulate NAME`` starts, by name.

An entry builds its simulator from the command's options (every simulator accepts exactly the
keys it is given) and says what to point at it. Building imports the simulator only then, so
reading the table is cheap. Provider declarations add their simulators here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reelgate.testing.simulator.base import UpstreamSimulator

__all__ = ["SIMULATORS", "SimulatorEntry", "SimulatorOptions"]


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


SIMULATORS: dict[str, SimulatorEntry] = {
    "ark": SimulatorEntry("ark", _ark, "point REELGATE_ARK_BASE_URL at it"),
}
