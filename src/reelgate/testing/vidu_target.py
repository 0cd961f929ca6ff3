"""Vidu's contract target: the shipped provider contract suite runs it on the Vidu simulator,
with the provider built through its declaration (``reelgate.providers.vidu.SPEC``)."""

from __future__ import annotations

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Provider
from reelgate.providers.vidu import SPEC
from reelgate.testing.target import ContractTarget, StartedUpstream, simulated
from reelgate.testing.targets import PROVIDER_TIMEOUT_S, built_by_declaration
from reelgate.testing.vidu_simulator import ViduSimulator


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    return built_by_declaration("vidu", upstream, secret, {"timeout": PROVIDER_TIMEOUT_S})


TARGET = ContractTarget(
    name="vidu",
    start=simulated(ViduSimulator),
    build=_build,
    request=VideoRequest(model="viduq2", prompt="a paper boat on a pond", duration=4),
    features=SPEC.features,
    not_applicable={
        "expiry": "Vidu has no expiry state: tasks wait in its queue until they run (spec §9);"
        " an off-peak task left unrun for 48 h is cancelled by Vidu in a way the spec leaves"
        " undocumented, and the contract request is not off-peak",
    },
)
