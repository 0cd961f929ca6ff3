"""Replicate's contract target: the shipped provider contract suite runs the Replicate adapter,
built through its declaration, on the Replicate simulator."""

from __future__ import annotations

import functools

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Provider
from reelgate.providers.replicate import SPEC
from reelgate.testing.replicate_simulator import ReplicateSimulator
from reelgate.testing.target import ContractTarget, StartedUpstream, simulated
from reelgate.testing.targets import PROVIDER_TIMEOUT_S, built_by_declaration

__all__ = ["TARGET"]


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    return built_by_declaration("replicate", upstream, secret, {"timeout": PROVIDER_TIMEOUT_S})


TARGET = ContractTarget(
    name="replicate",
    start=simulated(functools.partial(ReplicateSimulator, webhook_retry_s=0.1)),
    build=_build,
    request=VideoRequest(model="doubao-seedance-1-0-pro-250528", prompt="a paper boat on a pond"),
    features=SPEC.features,
)
