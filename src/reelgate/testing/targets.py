"""The contract targets of reelgate's own providers: Ark on the Ark simulator, the sandbox (its own
upstream) and ``InMemoryProvider`` (likewise). Each says how its upstream starts, how its
provider is built on it and what it declares; ``tests/contract/test_providers.py`` runs the
suite over them."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.channels import Channel
from reelgate.core.request import VideoRequest
from reelgate.providers import plugins
from reelgate.providers.ark import SPEC as ARK_SPEC
from reelgate.providers.base import BuildContext, Features, Provider
from reelgate.providers.sandbox import SPEC as SANDBOX_SPEC
from reelgate.providers.sandbox import provider as sandbox
from reelgate.testing.ark_simulator import ArkSimulator
from reelgate.testing.clock import ManualClock
from reelgate.testing.memory import InMemoryProvider
from reelgate.testing.simulator import (
    Fault,
    LocalControl,
    Outcome,
    UpstreamCounts,
    UpstreamSimulator,
    serve_in_thread,
)
from reelgate.testing.simulators import load
from reelgate.testing.target import ContractTarget, StartedUpstream, Timings

__all__ = [
    "ARK",
    "MEMORY",
    "SANDBOX",
    "MemoryControl",
    "SandboxControl",
    "built_by_declaration",
    "declared_targets",
    "memory_target",
    "serving",
]

# Well under Timings.hang_s: a hung answer times out, a trickled one still arrives.
PROVIDER_TIMEOUT_S = 1.0


# -- Ark on the Ark simulator -------------------------------------------------------------------
@contextlib.contextmanager
def serving(sim: UpstreamSimulator, key: str) -> Iterator[StartedUpstream]:
    """``sim`` served on loopback while in the block, as the suite drives it."""
    handle = serve_in_thread(sim)
    try:
        yield StartedUpstream(handle.base_url, LocalControl(sim), key)
    finally:
        handle.stop()


def _start_ark(key: str, timings: Timings) -> contextlib.AbstractContextManager[StartedUpstream]:
    sim = ArkSimulator(
        api_keys={key},
        queued_seconds=timings.queued_s,
        running_seconds=timings.running_s,
        timeout_hang_s=timings.hang_s,
    )
    return serving(sim, key)


def _build_ark(upstream: StartedUpstream, secret: str) -> Provider:
    return built_by_declaration("ark", upstream, secret, {"timeout": PROVIDER_TIMEOUT_S})


def built_by_declaration(
    provider: str, upstream: StartedUpstream, secret: str, options: Mapping[str, Any]
) -> Provider:
    """A provider as a channel pointed at ``upstream`` gets it: through its declaration's
    options model and builder (the suite then also proves the declaration)."""
    spec = plugins.spec(provider)
    assert spec is not None, f"no provider '{provider}' is declared"
    channel = Channel(name="contract", provider=provider, base_url=upstream.base_url)
    return spec.build(channel, secret, spec.parse_options(options), BuildContext())


def declared_targets() -> list[ContractTarget]:
    """The contract targets every declared provider names (built-in and installed ones)."""
    found = []
    for spec in plugins.specs().values():
        if spec.contract:
            target = load(spec.contract)
            assert isinstance(target, ContractTarget), f"{spec.contract} is no ContractTarget"
            found.append(target)
    return found


ARK = ContractTarget(
    name="ark",
    start=_start_ark,
    build=_build_ark,
    request=VideoRequest(
        model="doubao-seedance-1-0-pro-250528",
        prompt="a paper boat on a pond",
        metadata={"return_last_frame": True},
    ),
    features=ARK_SPEC.features,
)


# -- the sandbox: its own upstream --------------------------------------------------------------
_MARKERS = {
    Outcome.SUCCESS: "",
    Outcome.FAILURE: sandbox.FAIL_MARKER,
    Outcome.EXPIRY: sandbox.EXPIRE_MARKER,
    Outcome.MODERATION: sandbox.REJECT_MARKER,
}
_LOCAL = "the sandbox renders locally: there is no wire to fault"


class SandboxControl:
    """The sandbox's outcomes are its prompt markers; its time is a manual clock; its creates
    are the job files it wrote."""

    def __init__(self, data_dir: Path, timings: Timings) -> None:
        self.data_dir = data_dir
        self.timings = timings
        self.clock = ManualClock(time.time())

    def arrange(self, outcome: Outcome, request: NormalizedRequest) -> NormalizedRequest:
        if outcome not in _MARKERS:
            raise NotImplementedError(f"the sandbox cannot stage {outcome}")
        marker = _MARKERS[outcome]
        return dataclasses.replace(request, prompt=f"{request.prompt} {marker}".rstrip())

    def inject(self, fault: Fault) -> None:
        raise NotImplementedError(_LOCAL)

    def counts(self) -> UpstreamCounts:
        return UpstreamCounts(len(list((self.data_dir / "sandbox" / "jobs").glob("*.json"))), None)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@contextlib.contextmanager
def _start_sandbox(key: str, timings: Timings) -> Iterator[StartedUpstream]:
    with tempfile.TemporaryDirectory(prefix="sandbox-contract-") as tmp:
        yield StartedUpstream(tmp, SandboxControl(Path(tmp), timings), key)


def _build_sandbox(upstream: StartedUpstream, secret: str) -> Provider:
    control = cast(SandboxControl, upstream.control)
    return sandbox.SandboxProvider(
        control.data_dir,
        queue_seconds=control.timings.queued_s,
        run_seconds=control.timings.running_s,
        clock=control.clock,
    )


async def _open_sandbox_result(upstream: StartedUpstream, ref: str) -> bytes:
    prefix = f"{sandbox.LOCAL_SCHEME}{sandbox.NAME}/"
    assert ref.startswith(prefix), f"not a sandbox media reference: {ref}"
    return (Path(upstream.base_url) / "sandbox" / "media" / ref.removeprefix(prefix)).read_bytes()


SANDBOX = ContractTarget(
    name="sandbox",
    start=_start_sandbox,
    build=_build_sandbox,
    request=VideoRequest(model="sandbox-t2v", prompt="a paper boat", duration=1, size=(160, 96)),
    features=SANDBOX_SPEC.features,
    credentials=False,
    not_applicable={
        "fault_at_create": _LOCAL,
        "fault_at_lookup": _LOCAL,
        "unknown_status": "the sandbox's jobs only take the documented states",
    },
    open_result=_open_sandbox_result,
)


# -- InMemoryProvider: its own upstream ---------------------------------------------------------
class MemoryControl:
    """Drives an ``InMemoryProvider`` on a manual clock."""

    def __init__(self, provider: InMemoryProvider, clock: ManualClock) -> None:
        self.provider = provider
        self.clock = clock

    def arrange(self, outcome: Outcome, request: NormalizedRequest) -> NormalizedRequest:
        self.provider.script(outcome)
        return request

    def inject(self, fault: Fault) -> None:
        self.provider.inject(fault)

    def counts(self) -> UpstreamCounts:
        return UpstreamCounts(len(self.provider.jobs), self.provider.lookups)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def memory_target(
    make: Callable[..., InMemoryProvider] = InMemoryProvider, name: str = "memory"
) -> ContractTarget:
    """The target of an ``InMemoryProvider`` (or of a subclass: ``make`` builds it from a
    clock and ``queued``/``running`` seconds)."""

    @contextlib.contextmanager
    def start(key: str, timings: Timings) -> Iterator[StartedUpstream]:
        clock = ManualClock(time.time())
        provider = make(clock, queued=timings.queued_s, running=timings.running_s)
        yield StartedUpstream("memory://", MemoryControl(provider, clock), key)

    return ContractTarget(
        name=name,
        start=start,
        build=_build_memory,
        request=VideoRequest(model="memory-1", prompt="a paper boat"),
        features=Features(batch_size=1000, callbacks="none", cancel="queued"),
        credentials=False,
        not_applicable={
            "fault_at_create:slow": _NO_WIRE,
            "fault_at_lookup:slow": _NO_WIRE,
            "result_mp4": "in memory: results are placeholder URLs, not files",
        },
    )


def _build_memory(upstream: StartedUpstream, secret: str) -> Provider:
    return cast(MemoryControl, upstream.control).provider


_NO_WIRE = "in memory: there is no wire to answer slowly on"

MEMORY = memory_target()
