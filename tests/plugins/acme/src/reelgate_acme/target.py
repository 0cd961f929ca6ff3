"""Acme's contract target: the shipped provider contract suite runs it on the Acme simulator."""

from __future__ import annotations

from reelgate.core.channels import Channel
from reelgate.core.request import VideoRequest
from reelgate.providers.base import BuildContext, Provider
from reelgate.testing import ContractTarget, StartedUpstream, simulated
from reelgate_acme import SPEC, AcmeOptions
from reelgate_acme.simulator import AcmeSimulator


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    channel = Channel(name="contract", provider="acme", base_url=upstream.base_url)
    return SPEC.build(channel, secret, AcmeOptions(timeout=1.0), BuildContext())


TARGET = ContractTarget(
    name="acme",
    start=simulated(AcmeSimulator),
    build=_build,
    request=VideoRequest(model="acme-v1", prompt="a paper boat", duration=2),
    features=SPEC.features,
)
