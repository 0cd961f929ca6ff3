"""Jimeng's contract target: the shipped provider contract suite runs it on the Jimeng
simulator (signatures verified on every request), the provider built through its declaration."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from reelgate.core.request import VideoRequest
from reelgate.providers.base import Provider
from reelgate.providers.jimeng import SPEC
from reelgate.testing.jimeng_simulator import JimengSimulator
from reelgate.testing.simulator import LocalControl, serve_in_thread
from reelgate.testing.target import ContractTarget, StartedUpstream, Timings
from reelgate.testing.targets import PROVIDER_TIMEOUT_S, built_by_declaration

# The upstream takes a key pair: the suite's key becomes the pair's access key.
SECRET = "contract-secret-key"  # noqa: S105 - the simulator's made-up secret key


@contextlib.contextmanager
def _start(key: str, timings: Timings) -> Iterator[StartedUpstream]:
    pair = f"{key}:{SECRET}"
    sim = JimengSimulator(
        api_keys={pair},
        queued_seconds=timings.queued_s,
        running_seconds=timings.running_s,
        timeout_hang_s=timings.hang_s,
    )
    handle = serve_in_thread(sim)
    try:
        yield StartedUpstream(handle.base_url, LocalControl(sim), pair)
    finally:
        handle.stop()


def _build(upstream: StartedUpstream, secret: str) -> Provider:
    if ":" not in secret:  # the suite's wrong credential: a wrong pair of the same form
        secret = f"{secret}:{SECRET}"
    return built_by_declaration("jimeng", upstream, secret, {"timeout": PROVIDER_TIMEOUT_S})


TARGET = ContractTarget(
    name="jimeng",
    start=_start,
    build=_build,
    request=VideoRequest(model="jimeng_v30", prompt="a paper boat on a pond"),
    features=SPEC.features,
)
