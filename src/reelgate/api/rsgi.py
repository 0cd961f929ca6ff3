"""reelgate under granian's RSGI interface: the hot status GET first, the application for the rest.

``reelgate serve`` runs granian with this entry instead of plain ASGI. A polled task's status GET
(``api.hotpath``) is answered here with one ``response_bytes`` call: no ASGI scope dict, no
receive/send round trips, no middleware or router. Profiling the status GET showed those layers,
not the database or the rendering, taking most of each request's time. Every other request goes
through a small RSGI→ASGI bridge into the Starlette application, unchanged: request bodies are
streamed in, responses sent whole or streamed out (SSE, media), and a client that goes away is
reported to the application as ``http.disconnect``.

Long-polls of a cached token and task (``?wait=`` alone, or ``Prefer: wait``) are awaited here
too: a thousand clients waiting on one task are answered together when it changes, and through
the full application each answer cost ten polls' worth of CPU, stalling every other request.

The hot answers carry the same ``X-Request-Id`` and metrics as ``api.context.RequestObserver``
gives the others. ``reelgate serve --server uvicorn`` serves the plain ASGI application.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from granian._granian import RSGIHTTPProtocol as HTTPProtocol
from granian._granian import RSGIProtocolClosed as ProtocolClosed
from granian.rsgi import Scope
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Message

from reelgate import logs
from reelgate.api.app import app_from_env
from reelgate.api.errors import ClientGone
from reelgate.api.hotpath import HotHandler, HotRoutes
from reelgate.api.seed import wait_seconds
from reelgate.core.errors import ReelgateError
from reelgate.metrics import RouteStats

log = logging.getLogger("reelgate.api")

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_FAILED = b'{"code":"internal_error","message":"internal error; it has been logged","data":null}'


class RsgiGateway:
    def __init__(self, app: Starlette, hot: HotRoutes, *, freeze_heap: bool = False) -> None:
        self.app = app
        self.hot = hot
        # After start-up, move what exists then (modules, the app, its settings and caches) out
        # of the cyclic collector's reach: collections under load then walk only the objects
        # requests make. Under 1000 clients this took the poll p99 from about 115 to 40 ms on
        # one core (bench/load.py), collections of the start-up heap being the long pauses.
        self.freeze_heap = freeze_heap
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None

    # -- start-up and shutdown: granian calls these with its event loop, around serving -------
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        lifespan = self.app.router.lifespan_context(self.app)
        try:
            loop.run_until_complete(lifespan.__aenter__())
        except Exception as exc:
            log.error("start-up failed: %s", exc, exc_info=exc)
            sys.exit(1)
        self._lifespan = lifespan
        if self.freeze_heap:
            gc.collect()
            gc.freeze()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            loop.run_until_complete(lifespan.__aexit__(None, None, None))

    # -- requests ------------------------------------------------------------------------------
    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.method == "GET":
            if not scope.query_string:
                hit = self.hot.match(scope.path)
                if hit is not None and self._hot(scope, proto, *hit):
                    return
            if (scope.query_string or "prefer" in scope.headers) and await self._hot_wait(
                scope, proto
            ):
                return
        await self._bridge(scope, proto)

    def _hot(
        self,
        scope: Scope,
        proto: HTTPProtocol,
        stats: RouteStats,
        handler: HotHandler,
        task_id: str,
    ) -> bool:
        """Answer from memory, or False: the application answers the request."""
        start = time.perf_counter()
        headers = scope.headers
        if "prefer" in headers:
            return False  # a long-poll: the full route waits
        try:
            answer = handler(headers.get("authorization"), headers.get("if-none-match"), task_id)
        except Exception:
            return False  # the application answers it, and reports what went wrong
        if answer is None:
            return False
        self._send(scope, proto, stats, start, answer)
        return True

    async def _hot_wait(self, scope: Scope, proto: HTTPProtocol) -> bool:
        """A long-poll of a cached token and task, awaited here; False: the application answers
        it (nothing was awaited yet)."""
        hit = self.hot.match_waiter(scope.path)
        wait = _wait_of(scope) if hit is not None else None
        if hit is None or wait is None:
            return False
        stats, waiter, task_id = hit
        start = time.perf_counter()
        headers = scope.headers
        try:
            answer = await waiter(
                headers.get("authorization"), headers.get("if-none-match"), task_id, wait
            )
        except Exception as exc:
            log.error("long-poll failed", exc_info=exc)
            answer = (500, [("content-type", "application/json")], _FAILED)
        if answer is None:
            return False
        self._send(scope, proto, stats, start, answer)
        return True

    def _send(
        self,
        scope: Scope,
        proto: HTTPProtocol,
        stats: RouteStats,
        start: float,
        answer: tuple[int, list[tuple[str, str]], bytes],
    ) -> None:
        sent = scope.headers.get("x-request-id")
        request_id = logs.request_id_from_header(_raw(sent)) if sent else logs.new_request_id()
        status, out, body = answer
        proto.response_bytes(status, [*out, ("x-request-id", request_id)], body)
        stats.timed(time.perf_counter() - start)
        stats.answered(status)

    async def _bridge(self, scope: Scope, proto: HTTPProtocol) -> None:
        exchange = _Exchange(proto)
        try:
            await self.app(_asgi_scope(scope), exchange.receive, exchange.send)
        except Exception as exc:
            if exchange.closed:
                return  # the client went away mid-answer: nothing to report
            if not exchange.started:
                log.error("request failed before an answer", exc_info=exc)
                exchange.fail()
            # Otherwise the application has answered (500) and logged it already.
            return
        exchange.finish()


def gateway_from_env() -> RsgiGateway:
    """Factory for granian's RSGI interface (``reelgate serve``): the application of
    ``api.app.app_from_env`` behind its hot routes."""
    app = app_from_env()
    hot = app.state.hot_routes
    assert isinstance(hot, HotRoutes)
    return RsgiGateway(app, hot, freeze_heap=True)


class _Exchange:
    """One request's ASGI ``receive`` and ``send`` over an RSGI protocol object."""

    def __init__(self, proto: HTTPProtocol) -> None:
        self.proto = proto
        self.started = False  # the answer's status line is out (or about to be)
        self.closed = False  # the client stopped reading
        self._status = 500
        self._headers: list[tuple[str, str]] = []
        self._chunks: AsyncIterator[bytes] | None = None
        self._body_done = False
        self._stream: Any = None
        self._sent = False

    async def receive(self) -> Message:
        if not self._body_done:
            if self._chunks is None:
                self._chunks = self.proto.__aiter__()
            assert self._chunks is not None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": bytes(chunk), "more_body": True}
        await self.proto.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = int(message["status"])
            self._headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            ]
            return
        if kind != "http.response.body" or self._sent:
            return
        self.started = True
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self._stream is None:
            if not more:
                self._sent = True
                self.proto.response_bytes(self._status, self._headers, bytes(body))
                return
            self._stream = self.proto.response_stream(self._status, self._headers)
        if body:
            try:
                await self._stream.send_bytes(bytes(body))
            except ProtocolClosed as exc:
                self.closed = True
                raise ClientGone("the client closed the connection") from exc
        if not more:
            self._sent = True

    def finish(self) -> None:
        """The application returned: make sure the client got an answer."""
        if self._stream is None and not self._sent:
            self._sent = True
            self.proto.response_empty(self._status, self._headers)

    def fail(self) -> None:
        self._sent = True
        self.proto.response_bytes(500, [("content-type", "application/json")], _FAILED)


def _asgi_scope(scope: Scope) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "query_string": scope.query_string.encode("utf-8"),
        "root_path": "",
        "headers": _headers(scope.headers),
        "client": _address(scope.client),
        "server": _address(scope.server),
        "state": {},
    }


# Stands for a header value granian could not read (not visible ASCII): no client can send it.
UNREADABLE = b"\xff"


def _headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The request's headers for ASGI. granian leaves out a value it cannot read but keeps its
    name: it is passed on as ``UNREADABLE``, so that a route honouring that header (such as
    ``Idempotency-Key``) refuses it instead of acting as if it had not been sent."""
    out = [(name.encode("latin-1"), _raw(value)) for name, value in headers.items()]
    names = [name.encode("latin-1") for name in headers.keys()]  # noqa: SIM118 - not a dict
    readable = {name for name, _ in out}
    if len(readable) < len(names):
        out += [(name, UNREADABLE) for name in names if name not in readable]
    return out


def _wait_of(scope: Scope) -> float | None:
    """The seconds of a long-poll whose query is only ``wait=`` (or none, with ``Prefer``), read
    as the seed's route reads them; None for anything else (the application answers it, errors
    included)."""
    query = scope.query_string
    if query and (not query.startswith("wait=") or "&" in query):
        return None
    prefer = scope.headers.get("prefer")
    request = Request(
        {
            "type": "http",
            "query_string": query.encode("utf-8"),
            "headers": [(b"prefer", _raw(prefer))] if prefer is not None else [],
        }
    )
    try:
        return wait_seconds(request)
    except ReelgateError:
        return None


def _raw(value: str) -> bytes:
    """A header value as bytes (granian gives text; ``latin-1`` keeps each byte as it came)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)
