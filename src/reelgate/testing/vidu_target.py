"""Vidu's contract target: the shipped provider contract suite runs it on the Vidu simulator,
with the provider built through its declaration (``reelgate.providers.vidu.SPEC``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Provider
from reelgate.providers.vidu import SPEC
from reelgate.testing.simulator import LocalControl, serve_in_thread
from reelgate.testing.target import ContractTarget, StartedUpstream, Timings
from reelgate.testing.targets import PROVIDER_TIMEOUT_S, built_by_declaration
from reelgate.testing.vidu_simulator import ViduSimulator


@contextlib.contextmanager
def _start(key: str, timings: Timings) -> Iterator[StartedUpstream]:
    sim = ViduSimulator(
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


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    return built_by_declaration("vidu", upstream, secret, {"timeout": PROVIDER_TIMEOUT_S})


TARGET = ContractTarget(
    name="vidu",
    start=_start,
    build=_build,
    request=VideoRequest(model="viduq2", prompt="a paper boat on a pond", duration=4),
    features=SPEC.features,
    not_applicable={
        "expiry": "Vidu has no expiry state: tasks wait in its queue until they run (spec §9);"
        " an off-peak task left unrun for 48 h is cancelled by Vidu in a way the spec leaves"
        " undocumented, and the contract request is not off-peak",
    },
)
