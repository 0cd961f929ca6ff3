"""Acme's contract target: the shipped provider contract suite runs it on the Acme simulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from reelgate.core.channels import Channel
from reelgate.core.request import VideoRequest
from reelgate.providers.base import BuildContext, Provider
from reelgate.testing import ContractTarget, LocalControl, StartedUpstream, Timings, serve_in_thread
from reelgate_acme import SPEC, AcmeOptions
from reelgate_acme.simulator import AcmeSimulator


@contextlib.contextmanager
def _start(key: str, timings: Timings) -> Iterator[StartedUpstream]:
    sim = AcmeSimulator(
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
    channel = Channel(name="contract", provider="acme", base_url=upstream.base_url)
    return SPEC.build(channel, secret, AcmeOptions(timeout=1.0), BuildContext())


TARGET = ContractTarget(
    name="acme",
    start=_start,
    build=_build,
    request=VideoRequest(model="acme-v1", prompt="a paper boat", duration=2),
    features=SPEC.features,
)
