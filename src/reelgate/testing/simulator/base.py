"""The base every wire-level simulator stands on, so that a new one is only its upstream's API.

It holds what all simulators share: the accepted API keys, the upstream's time (an injectable
clock, a time scale and ``advance``), the faults still to inject, the outcomes scripted for the
next tasks, the counts tests assert on, and the ``/_sim`` control routes. A simulator adds its
routes (each wrapped by ``endpoint`` so faults and counts apply), its error body for an injected
status, and calls ``next_outcome()`` and ``record_create()`` when it creates a task.

Control routes: ``POST /_sim/faults {"endpoint","kind","count"[,"retry_after"]}``,
``POST /_sim/script {"outcome"[,"count"]}``, ``POST /_sim/clock {"advance": seconds}``,
``GET /_sim/stats``, ``POST /_sim/reset``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgate.testing.simulator.faults import SlowResponse, lose_answer, take_fault
from reelgate.testing.simulator.kinds import Fault, FaultKind, Outcome

__all__ = ["UpstreamSimulator"]

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class UpstreamSimulator:
    """State and control shared by every simulator (subclass it as a dataclass)."""

    api_keys: set[str]
    clock: Callable[[], float] = time.time
    # Upstream seconds per second of ``clock``: 10.0 runs a 30 s task in 3 s.
    time_scale: float = 1.0
    timeout_hang_s: float = 5.0  # how long a TIMEOUT fault holds the answer back
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # requests received per endpoint
    public_url: str = ""  # set when served: the root the simulator's own links start with
    created: int = field(default=0, init=False)  # tasks created upstream
    _offset: float = field(default=0.0, init=False, repr=False)
    _script: deque[Outcome] = field(default_factory=deque, init=False, repr=False)

    # Declared by each simulator: where its API lives, and its endpoints by contract group
    # ("create", "lookup", "cancel"); a fault or a count may name a group instead of an endpoint.
    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {}

    # -- time ---------------------------------------------------------------------------------
    def now(self) -> float:
        """The simulator's time: ``clock()`` plus every ``advance`` so far."""
        return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the upstream's time on by ``seconds`` of its own (whatever the time scale)."""
        self._offset += seconds / self.time_scale

    # -- scripting and accounting ------------------------------------------------------------
    def script(self, outcome: Outcome, count: int = 1) -> None:
        """The next ``count`` tasks created end with ``outcome`` (the default is success)."""
        self._script.extend([Outcome(outcome)] * count)

    def next_outcome(self) -> Outcome:
        """The outcome of the task being created now (a simulator calls it once per create)."""
        return self._script.popleft() if self._script else Outcome.SUCCESS

    def record_create(self) -> None:
        self.created += 1

    def accepts(self, key: str) -> bool:
        """Whether ``key`` is one of the keys the simulator was started with."""
        return key in self.api_keys

    def lookup_requests(self) -> int:
        return sum(self.calls[e] for e in self.endpoint_groups.get("lookup", ()))

    def stats(self) -> dict[str, Any]:
        """``GET /_sim/stats`` (a simulator adds its own counts)."""
        return {
            "calls": dict(self.calls),
            "creates": self.created,
            "lookup_requests": self.lookup_requests(),
        }

    def reset(self) -> None:
        """Forget faults, scripted outcomes and counts (a simulator also forgets its tasks)."""
        self.faults.clear()
        self.calls.clear()
        self._script.clear()
        self.created = 0

    # -- what a simulator supplies -----------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        """The upstream's own routes, each endpoint wrapped by ``self.endpoint``."""
        raise NotImplementedError

    def injected_error(self, status: int) -> Response:
        """The upstream's own error answer for an injected ``status`` (500 or 429)."""
        raise NotImplementedError

    def in_flight(self, endpoint: str, request: Request) -> contextlib.AbstractContextManager[None]:
        """Held around each request to ``endpoint``, faults included (for concurrency counts)."""
        return contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work while served (e.g. posting callbacks)."""
        yield

    # -- HTTP ---------------------------------------------------------------------------------
    def endpoint(self, name: str, handler: Handler) -> ASGIApp:
        """``handler`` as the endpoint ``name``: counted, and faulted as scripted."""
        return _Endpoint(self, name, handler)

    async def serve(
        self, name: str, handler: Handler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive)
        self.calls[name] += 1
        with self.in_flight(name, request):
            fault = take_fault(self.faults, name, self.endpoint_groups)
            if fault is not None and fault.kind.loses_answer:
                if name in self._carried_out():  # the work is done; only the answer is lost
                    await handler(request)
                await lose_answer(fault.kind, send, self.timeout_hang_s)
                return
            status = fault.kind.error_status if fault is not None else None
            if fault is not None and status is not None:
                response = self._injected(fault, status)
            else:
                response = await handler(request)
                if fault is not None and fault.kind is FaultKind.SLOW:
                    response = SlowResponse(response)
        await response(scope, receive, send)

    def _carried_out(self) -> frozenset[str]:
        groups = self.endpoint_groups
        return groups.get("create", frozenset()) | groups.get("cancel", frozenset())

    def _injected(self, fault: Fault, status: int) -> Response:
        response = self.injected_error(status)
        if "retry-after" in response.headers:
            del response.headers["retry-after"]
        if fault.kind is FaultKind.RATE_LIMITED:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response

    @property
    def app(self) -> Starlette:
        return Starlette(
            lifespan=self._lifespan,
            routes=[*self.api_routes(), *self._control_routes()],
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        async with self.running():
            yield

    def _control_routes(self) -> list[BaseRoute]:
        return [
            Route("/_sim/faults", self._add_fault, methods=["POST"]),
            Route("/_sim/script", self._add_script, methods=["POST"]),
            Route("/_sim/clock", self._move_clock, methods=["POST"]),
            Route("/_sim/stats", self._stats, methods=["GET"]),
            Route("/_sim/reset", self._reset, methods=["POST"]),
        ]

    async def _add_fault(self, request: Request) -> Response:
        try:
            spec = await request.json()
            self.faults.append(
                Fault(
                    str(spec["endpoint"]),
                    FaultKind(str(spec["kind"])),
                    int(spec.get("count", 1)),
                    float(spec.get("retry_after", 1.0)),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return _bad_control_request()
        return JSONResponse({"ok": True})

    async def _add_script(self, request: Request) -> Response:
        try:
            spec = await request.json()
            self.script(Outcome(str(spec["outcome"])), int(spec.get("count", 1)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return _bad_control_request()
        return JSONResponse({"ok": True})

    async def _move_clock(self, request: Request) -> Response:
        try:
            self.advance(float((await request.json())["advance"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return _bad_control_request()
        return JSONResponse({"now": self.now()})

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse(self.stats())

    async def _reset(self, _request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


class _Endpoint:
    """A raw ASGI endpoint (Starlette calls instances as apps, functions as request handlers)."""

    def __init__(self, sim: UpstreamSimulator, name: str, handler: Handler) -> None:
        self.sim, self.name, self.handler = sim, name, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sim.serve(self.name, self.handler, scope, receive, send)


def _bad_control_request() -> Response:
    return JSONResponse({"error": "bad control request"}, status_code=400)
