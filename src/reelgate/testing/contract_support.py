"""The machinery under the contract suite: running one check against a target (skips, known
failures, a fresh simulator and provider each time), the ``Rig`` a check drives, a callback
receiver, and what a real MP4 is."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import av
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest, normalize
from reelgate.core.ids import new_task_id
from reelgate.core.lifecycle import Callback, Observation, UpstreamState
from reelgate.providers.base import Provider
from reelgate.testing.simulator.kinds import Outcome
from reelgate.testing.simulator.server import start_server
from reelgate.testing.target import ContractTarget, StartedUpstream

__all__ = ["TERMINAL", "CallbackReceiver", "Rig", "assert_mp4", "other_id", "run_check"]

TERMINAL = frozenset(
    {UpstreamState.SUCCEEDED, UpstreamState.FAILED, UpstreamState.EXPIRED, UpstreamState.CANCELLED}
)
# Real seconds to wait for something that happens off the clock (a render, a callback post).
SETTLE_S = 30.0
POLL_S = 0.02

Scenario = Callable[["Rig"], Awaitable[None]]


def run_check(target: ContractTarget, check: str, scenario: Scenario) -> None:
    """Run ``scenario`` against a fresh simulator of ``target``, honouring its declarations."""
    reason = target.why_not_applicable(check)
    if reason is not None:
        pytest.skip(f"{target.name}: {check} does not apply: {reason}")
    known = target.known_failure(check)
    try:
        with target.started(f"contract-key-{target.name}") as upstream:
            asyncio.run(_in_rig(target, upstream, scenario))
    except (Exception, pytest.fail.Exception) as exc:  # a failed assert or pytest.raises
        if known is None:
            raise
        pytest.xfail(f"{target.name}: {check} fails as declared ({known}): {exc!r}")
    if known is not None:
        pytest.fail(
            f"{target.name}: {check} passes now; remove it from the target's known_failures"
        )


async def _in_rig(target: ContractTarget, upstream: StartedUpstream, scenario: Scenario) -> None:
    async with Rig.open(target, upstream) as rig:
        await scenario(rig)


@dataclass
class Rig:
    """A provider on a running simulator, and the moves a check makes with both."""

    target: ContractTarget
    upstream: StartedUpstream
    provider: Provider
    caps: ModelCapabilities
    others: list[Provider] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, target: ContractTarget, upstream: StartedUpstream) -> AsyncIterator[Rig]:
        provider = target.build(upstream, upstream.key)
        rig = cls(target, upstream, provider, _model(provider, target))
        try:
            yield rig
        finally:
            for p in (provider, *rig.others):
                await p.close()

    def with_secret(self, secret: str) -> Provider:
        """Another provider on the same upstream with credential ``secret`` (closed at the end)."""
        other = self.target.build(self.upstream, secret)
        self.others.append(other)
        return other

    @property
    def timings(self) -> tuple[float, float]:
        return self.target.timings.queued_s, self.target.timings.running_s

    def request(self, outcome: Outcome = Outcome.SUCCESS) -> NormalizedRequest:
        """The target's request, normalized as reelgate would, arranged to end with ``outcome``."""
        return self.upstream.control.arrange(outcome, normalize(self.target.request, self.caps))

    async def create(
        self, outcome: Outcome = Outcome.SUCCESS, *, callback_url: str | None = None
    ) -> tuple[str, str]:
        """Submit a new task; its (reelgate task id, upstream id)."""
        task_id = new_task_id()
        upstream_id = await self.provider.submit(
            task_id, self.request(outcome), callback_url=callback_url
        )
        assert isinstance(upstream_id, str), f"submit answered {upstream_id!r}"
        assert upstream_id, "submit must answer an upstream id"
        return task_id, upstream_id

    def creates(self) -> int:
        return self.upstream.control.counts().creates

    def advance_past_queue(self) -> None:
        self.upstream.control.advance(self.timings[0] + 1)

    def advance_past_run(self) -> None:
        self.upstream.control.advance(self.timings[1] + 1)

    async def look(self, *upstream_ids: str) -> Mapping[str, Observation | None]:
        """``look_up``, with the answer's shape checked (only asked ids, closed states)."""
        answer = await self.provider.look_up(list(upstream_ids))
        assert set(answer) <= set(upstream_ids), f"answered ids never asked: {answer}"
        for upstream_id, seen in answer.items():
            assert seen is None or isinstance(seen, Observation), (upstream_id, seen)
            assert seen is None or isinstance(seen.state, UpstreamState), (upstream_id, seen)
        return answer

    async def state_of(self, upstream_id: str) -> Observation:
        answer = await self.look(upstream_id)
        assert upstream_id in answer, f"{upstream_id} is unknown upstream right after its create"
        seen = answer[upstream_id]
        assert seen is not None, f"{upstream_id} was not understood"
        return seen

    async def settle(
        self, upstream_id: str, states: frozenset[UpstreamState] = TERMINAL
    ) -> Observation:
        """The first look in ``states``: work off the clock (a local render) may take a moment."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            seen = await self.state_of(upstream_id)
            if seen.state in states or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(POLL_S)

    async def open_result(self, url: str) -> bytes:
        if self.target.open_result is not None:
            return await self.target.open_result(self.upstream, url)
        async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
            response = await client.get(url)
        assert response.status_code == 200, f"GET {url}: {response.status_code}"
        return response.content


def _model(provider: Provider, target: ContractTarget) -> ModelCapabilities:
    for caps in provider.models():
        if target.request.model in (caps.name, *caps.aliases):
            return caps
    raise AssertionError(f"{target.name} does not serve the target's model {target.request.model}")


def other_id(upstream_id: str, taken: set[str]) -> str:
    """An id of the same shape as ``upstream_id`` that the upstream never handed out."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    for ch in alphabet:
        candidate = upstream_id[:-1] + ch
        if candidate != upstream_id and candidate not in taken:
            return candidate
    raise AssertionError(f"cannot make an id like {upstream_id}")


def assert_mp4(data: bytes) -> None:
    """``data`` is an MP4 whose first video frame decodes."""
    assert data[4:8] == b"ftyp", f"not an MP4 (starts {data[:12]!r})"
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.streams.video, "no video stream"
        frame = next(container.decode(video=0))
        assert frame.width > 0
        assert frame.height > 0


class CallbackReceiver:
    """An HTTP endpoint on loopback that keeps every callback posted to it (body, headers and
    the URL it was posted to, as reelgate's callback route hands them to a provider)."""

    def __init__(self) -> None:
        self.received: list[Callback] = []

    @property
    def bodies(self) -> list[bytes]:
        return [c.body for c in self.received]

    async def _hook(self, request: Request) -> Response:
        self.received.append(
            Callback(await request.body(), dict(request.headers.items()), str(request.url))
        )
        return Response(b'{"received":true}', media_type="application/json")

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Serve while in the block; yields the URL to post to."""
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        server, thread, port = start_server(app, lifespan="off")
        try:
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    async def wait_for(self, condition: Callable[[list[Callback]], bool]) -> list[Callback]:
        deadline = time.monotonic() + SETTLE_S
        while not condition(list(self.received)):
            assert time.monotonic() < deadline, f"no such callback came: {self.bodies}"
            await asyncio.sleep(POLL_S)
        return list(self.received)
