"""fal's contract target: the shipped provider contract suite runs the fal adapter, built through
its declaration, on the fal simulator (its webhook keys at the simulator's own JWKS URL)."""

from __future__ import annotations

import functools

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Provider
from reelgate.providers.fal import SPEC
from reelgate.testing.fal_simulator import FalSimulator
from reelgate.testing.target import ContractTarget, StartedUpstream, simulated
from reelgate.testing.targets import PROVIDER_TIMEOUT_S, built_by_declaration

__all__ = ["TARGET"]


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    options = {
        "timeout": PROVIDER_TIMEOUT_S,
        "jwks_url": f"{upstream.base_url}/.well-known/jwks.json",
    }
    return built_by_declaration("fal", upstream, secret, options)


TARGET = ContractTarget(
    name="fal",
    start=simulated(functools.partial(FalSimulator, webhook_retry_s=0.1)),
    build=_build,
    request=VideoRequest(model="doubao-seedance-1-0-pro-250528", prompt="a paper boat on a pond"),
    features=SPEC.features,
    # fal's webhook body names the request by its id; reelgate's upstream id is app/request id.
    callback_id=lambda upstream_id: upstream_id.rpartition("/")[2],
)
