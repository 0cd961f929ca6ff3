"""The uniform handle a test drives any upstream simulator with, whatever its API.

``SimulatorControl`` is what the contract suite needs from a simulator: arrange how the next task
ends, inject a fault, read the counts, move the upstream's time on. ``LocalControl`` drives an
``UpstreamSimulator`` in this process; ``HttpControl`` drives one anywhere through its ``/_sim``
routes (``reelgate simulate NAME`` in another process, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from reelgate.core.capabilities import NormalizedRequest
from reelgate.testing.simulator.base import UpstreamSimulator
from reelgate.testing.simulator.kinds import Fault, Outcome

__all__ = ["HttpControl", "LocalControl", "SimulatorControl", "UpstreamCounts"]


@dataclass(frozen=True)
class UpstreamCounts:
    creates: int  # tasks created upstream (a refused or failed create is none)
    lookups: int | None  # look-up requests received; None where the upstream cannot tell


class SimulatorControl(Protocol):
    def arrange(self, outcome: Outcome, request: NormalizedRequest) -> NormalizedRequest:
        """Make the next task created from the returned request end with ``outcome``.

        A wire simulator scripts its next create and returns ``request`` as is; an upstream
        scripted through the request itself (prompt markers, say) returns it changed.
        """

    def inject(self, fault: Fault) -> None:
        """Hit the next ``fault.count`` requests to ``fault.endpoint`` with ``fault.kind``."""

    def counts(self) -> UpstreamCounts: ...

    def advance(self, seconds: float) -> None:
        """Move the upstream's time on by ``seconds`` (tasks move through their timeline)."""


class LocalControl:
    """A ``SimulatorControl`` of a simulator object in this process."""

    def __init__(self, sim: UpstreamSimulator) -> None:
        self.sim = sim

    def arrange(self, outcome: Outcome, request: NormalizedRequest) -> NormalizedRequest:
        self.sim.script(outcome)
        return request

    def inject(self, fault: Fault) -> None:
        self.sim.faults.append(fault)

    def counts(self) -> UpstreamCounts:
        return UpstreamCounts(self.sim.created, self.sim.lookup_requests())

    def advance(self, seconds: float) -> None:
        self.sim.advance(seconds)


class HttpControl:
    """A ``SimulatorControl`` of a simulator served at ``url`` (its root, not its API's base)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, object]) -> httpx.Response:
        response = httpx.post(f"{self.url}/_sim/{path}", json=body, timeout=self._timeout_s)
        response.raise_for_status()
        return response

    def arrange(self, outcome: Outcome, request: NormalizedRequest) -> NormalizedRequest:
        self._post("script", {"outcome": outcome.value, "count": 1})
        return request

    def inject(self, fault: Fault) -> None:
        self._post(
            "faults",
            {
                "endpoint": fault.endpoint,
                "kind": fault.kind.value,
                "count": fault.count,
                "retry_after": fault.retry_after,
            },
        )

    def counts(self) -> UpstreamCounts:
        response = httpx.get(f"{self.url}/_sim/stats", timeout=self._timeout_s)
        response.raise_for_status()
        stats = response.json()
        return UpstreamCounts(int(stats["creates"]), int(stats["lookup_requests"]))

    def advance(self, seconds: float) -> None:
        self._post("clock", {"advance": seconds})
