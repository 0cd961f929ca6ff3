"""What the provider contract suite (``reelgate.testing.contract``) runs against: a
``ContractTarget`` says how to start a provider's simulator, how to build the provider on it,
what to ask it for, and what the provider declares it supports.

This module needs no pytest, so a provider's own declaration can build its target; the
``Features`` a target holds the provider to are its declaration's own
(``reelgate.providers.base.Features``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Features, Provider
from reelgate.testing.simulator.base import UpstreamSimulator
from reelgate.testing.simulator.control import LocalControl, SimulatorControl
from reelgate.testing.simulator.server import serve_in_thread

__all__ = ["ContractTarget", "Features", "StartedUpstream", "Timings", "simulated"]


@dataclass(frozen=True)
class Timings:
    """The upstream's timeline for the suite's tasks, in the upstream's own seconds."""

    queued_s: float = 10.0
    running_s: float = 20.0
    # How long a TIMEOUT fault holds an answer back: the provider built for the suite must
    # time out well before this (a second, say).
    hang_s: float = 2.0


@dataclass
class StartedUpstream:
    """A running simulator: where the provider points and how the suite drives it."""

    base_url: str
    control: SimulatorControl
    key: str  # the credential it accepts


@dataclass(frozen=True)
class ContractTarget:
    """One (provider, simulator) pair for the contract suite.

    ``start(key, timings)`` starts the simulator accepting exactly ``key`` and yields it;
    ``build(upstream, secret)`` makes a provider on it with the credential ``secret`` (the
    suite also tries a wrong one, unless ``credentials`` is False: an upstream that checks
    none); ``request`` is a valid request for one of its models.
    ``not_applicable`` maps a check (``"moderation"``, ``"fault_at_create"``,
    ``"fault_at_create:timeout"``, …: the names in ``reelgate.testing.contract``) to why its
    situation cannot arise with this target: the suite reports it skipped with that reason.
    ``known_failures`` maps a check to the defect that still makes it fail: the suite reports
    it as an expected failure, and fails once it passes (so the entry is removed).
    ``open_result`` reads a result's bytes (default: an HTTP GET of the URL).
    ``callback_id`` is how the upstream names a task in its callbacks, given reelgate's
    upstream id for it (default: the id itself; fal's upstream id is ``app/request_id`` and its
    webhooks carry the request id alone).
    """

    name: str
    start: Callable[[str, Timings], contextlib.AbstractContextManager[StartedUpstream]]
    build: Callable[[StartedUpstream, str], Provider]
    request: VideoRequest
    features: Features = field(default_factory=Features)
    credentials: bool = True
    timings: Timings = Timings()
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    known_failures: Mapping[str, str] = field(default_factory=dict)
    open_result: Callable[[StartedUpstream, str], Awaitable[bytes]] | None = None
    callback_id: Callable[[str], str] = str

    def why_not_applicable(self, check: str) -> str | None:
        """The declared reason ``check`` (or the family before its ``:``) does not apply."""
        family = check.partition(":")[0]
        return self.not_applicable.get(check) or self.not_applicable.get(family)

    def known_failure(self, check: str) -> str | None:
        family = check.partition(":")[0]
        return self.known_failures.get(check) or self.known_failures.get(family)

    @contextlib.contextmanager
    def started(self, key: str) -> Iterator[StartedUpstream]:
        with self.start(key, self.timings) as upstream:
            yield upstream


def simulated(
    factory: Callable[..., UpstreamSimulator],
) -> Callable[[str, Timings], contextlib.AbstractContextManager[StartedUpstream]]:
    """The ``start`` of a target whose upstream is a simulator on the shared base: built by
    ``factory(api_keys=, queued_seconds=, running_seconds=, timeout_hang_s=)``, served on
    loopback in a thread, driven in this process."""

    @contextlib.contextmanager
    def start(key: str, timings: Timings) -> Iterator[StartedUpstream]:
        sim = factory(
            api_keys={key},
            queued_seconds=timings.queued_s,
            running_seconds=timings.running_s,
            timeout_hang_s=timings.hang_s,
        )
        handle = serve_in_thread(sim)
        try:
            yield StartedUpstream(handle.base_url, LocalControl(sim), key)
        finally:
            handle.stop()

    return start
