"""The RSGI entry on its own: hot answers without the application, the bridge into it (bodies in,
answers whole or streamed out, a client that goes away, failures), start-up and shutdown.

The protocol objects here are small stand-ins with granian's RSGI interface; the live server
tests (tests/integration/test_rsgi.py) run the same code under granian itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from granian._granian import RSGIProtocolClosed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reelgate.api.hotpath import Answer, HotRoutes
from reelgate.api.rsgi import RsgiGateway
from reelgate.metrics import HttpStats


class Headers:
    """granian's header map: ``keys`` names every header, ``items`` and ``get`` leave out a
    value that is not visible ASCII (``unreadable``)."""

    def __init__(self, pairs: list[tuple[str, str]], unreadable: tuple[str, ...] = ()) -> None:
        self.pairs = pairs
        self.unreadable = unreadable

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self.pairs if k == key), default)

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def keys(self) -> list[str]:
        return list(dict.fromkeys([*(k for k, _ in self.pairs), *self.unreadable]))


class Scope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    client = "127.0.0.1:50000"
    server = "127.0.0.1:8000"

    def __init__(self, method: str, path: str, query: str = "", **headers: str) -> None:
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = Headers([(k.replace("_", "-"), v) for k, v in headers.items()])


class Proto:
    """Records the answer; ``gone`` is set when the client goes away."""

    def __init__(self, chunks: tuple[bytes, ...] = ()) -> None:
        self.chunks = chunks
        self.gone = asyncio.Event()
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.streamed: list[bytes] = []
        self.flowing = asyncio.Event()  # set once a streamed answer has sent a few chunks
        self.answers = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def client_disconnect(self) -> None:
        await self.gone.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._answer(status, headers)
        self.body = body

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._answer(status, headers)

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport:
        self._answer(status, headers)
        return Transport(self)

    def _answer(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.answers += 1
        self.status, self.headers = status, headers


class Transport:
    def __init__(self, proto: Proto) -> None:
        self.proto = proto

    async def send_bytes(self, data: bytes) -> None:
        if self.proto.gone.is_set():
            raise RSGIProtocolClosed("closed")
        self.proto.streamed.append(data)
        if len(self.proto.streamed) >= 3:
            self.proto.flowing.set()


async def echo(request: Request) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
    return JSONResponse(
        {
            "bytes": len(body),
            "path": request.url.path,
            "query": request.url.query,
            "client": request.client.host if request.client else None,
            "agent": request.headers.get("user-agent"),
        }
    )


async def numbers(_request: Request) -> Response:
    async def count() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"{i}\n".encode()

    return StreamingResponse(count(), media_type="text/plain")


async def endless(_request: Request) -> Response:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"tick\n"
            await asyncio.sleep(0.001)

    return StreamingResponse(forever(), media_type="text/event-stream")


async def boom(_request: Request) -> Response:
    raise RuntimeError("a bug")


async def on_error(_request: Request, _exc: Exception) -> Response:
    return JSONResponse({"code": "internal_error"}, status_code=500)


def app(events: list[str] | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if events is not None:
            events.append("started")
        yield
        if events is not None:
            events.append("stopped")

    return Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=["GET", "POST"]),
            Route("/numbers", numbers),
            Route("/endless", endless),
            Route("/boom", boom),
            Route("/tasks/{task_id}", echo),
        ],
        lifespan=lifespan,
        exception_handlers={Exception: on_error},
    )


def gateway(handler: Any = None) -> tuple[RsgiGateway, HttpStats, list[tuple[str | None, ...]]]:
    stats = HttpStats()
    hot = HotRoutes(stats)
    calls: list[tuple[str | None, ...]] = []

    def answer(authorization: str | None, seen: str | None, task_id: str) -> Answer | None:
        calls.append((authorization, seen, task_id))
        if task_id == "known":
            return 200, [("etag", 'W/"1.0"')], b'{"ok": true}'
        return None

    hot.add("/tasks/{task_id}", handler or answer)
    return RsgiGateway(app(), hot), stats, calls


def run(gw: RsgiGateway, scope: Scope, proto: Proto) -> None:
    asyncio.run(gw.__rsgi__(scope, proto))  # type: ignore[arg-type]


def test_a_hot_route_is_answered_without_the_application() -> None:
    gw, stats, calls = gateway()
    proto = Proto()
    run(gw, Scope("GET", "/tasks/known", authorization="Bearer t", if_none_match="x"), proto)
    assert calls == [("Bearer t", "x", "known")]
    assert proto.status == 200
    assert proto.body == b'{"ok": true}'
    names = [name for name, _ in proto.headers]
    assert names == ["etag", "x-request-id"]
    route = stats.route("/tasks/{task_id}", "GET")
    assert route.answers == {200: 1}
    assert sum(route.slots) == 1


def test_a_hot_answer_keeps_a_sane_request_id_and_replaces_an_odd_one() -> None:
    gw, _, _ = gateway()
    for sent, kept in (("abc-123", True), ("bad id\x01", False)):
        proto = Proto()
        run(gw, Scope("GET", "/tasks/known", x_request_id=sent), proto)
        request_id = dict(proto.headers)["x-request-id"]
        assert (request_id == sent) is kept
        assert request_id


def test_what_the_hot_handler_declines_goes_to_the_application() -> None:
    gw, stats, calls = gateway()
    proto = Proto()
    run(gw, Scope("GET", "/tasks/unknown", user_agent="ua"), proto)
    assert calls == [(None, None, "unknown")]
    assert proto.status == 200
    assert b'"path":"/tasks/unknown"' in proto.body
    # Counted by the application's own observer only (not in these hot-route stats).
    assert stats.route("/tasks/{task_id}", "GET").answers == {}


@pytest.mark.parametrize(
    "scope",
    [
        Scope("GET", "/tasks/known", "wait=5"),  # a query string: the full route
        Scope("GET", "/tasks/known", prefer="wait=5"),  # a long-poll
        Scope("HEAD", "/tasks/known"),
        Scope("GET", "/tasks/known/more"),  # not the route's shape
    ],
)
def test_long_polls_queries_and_other_shapes_are_never_hot(scope: Scope) -> None:
    gw, _, calls = gateway()
    proto = Proto()
    run(gw, scope, proto)
    assert calls == []
    assert proto.answers == 1


def test_a_failing_hot_handler_leaves_the_request_to_the_application() -> None:
    def broken(*_args: Any) -> Answer | None:
        raise RuntimeError("bug in a hot handler")

    gw, _, _ = gateway(broken)
    proto = Proto()
    run(gw, Scope("GET", "/tasks/known"), proto)
    assert proto.status == 200
    assert b'"path":"/tasks/known"' in proto.body


def test_the_bridge_streams_a_request_body_in_and_passes_the_request_on() -> None:
    gw, _, _ = gateway()
    proto = Proto(chunks=(b"a" * 70_000, b"b" * 70_000, b"c"))
    scope = Scope("POST", "/echo/x y", "q=%20v&w=1", user_agent="tester/1")
    run(gw, scope, proto)
    assert proto.status == 200
    assert proto.body == (
        b'{"bytes":140001,"path":"/echo/x y","query":"q=%20v&w=1",'
        b'"client":"127.0.0.1","agent":"tester/1"}'
    )


def test_a_header_granian_could_not_read_reaches_the_application_as_unreadable() -> None:
    """Not as missing: a route honouring it (Idempotency-Key) must refuse it, not ignore it."""
    gw, _, _ = gateway()
    proto = Proto()
    scope = Scope("GET", "/echo/x", user_agent="tester/1")
    scope.headers.unreadable = ("user-agent", "idempotency-key")
    run(gw, scope, proto)
    assert proto.status == 200
    assert b'"agent":"tester/1"' in proto.body  # a readable value is kept as it came
    scope = Scope("GET", "/echo/x")
    scope.headers.unreadable = ("user-agent",)
    run(gw, scope, proto)
    assert '"agent":"\u00ff"'.encode() in proto.body  # granian's name, a value no client sends


def test_the_bridge_streams_an_answer_out() -> None:
    gw, _, _ = gateway()
    proto = Proto()
    run(gw, Scope("GET", "/numbers"), proto)
    assert proto.status == 200
    assert proto.streamed == [b"0\n", b"1\n", b"2\n"]
    assert ("content-type", "text/plain; charset=utf-8") in proto.headers


def test_a_client_that_goes_away_ends_an_endless_stream_quietly() -> None:
    gw, _, _ = gateway()
    proto = Proto()

    async def go() -> None:
        serving = asyncio.ensure_future(gw.__rsgi__(Scope("GET", "/endless"), proto))  # type: ignore[arg-type]
        await asyncio.wait_for(proto.flowing.wait(), 5)
        proto.gone.set()
        await asyncio.wait_for(serving, 5)

    asyncio.run(go())
    assert proto.status == 200
    assert proto.answers == 1


def test_an_application_error_is_its_own_500_and_nothing_more() -> None:
    gw, _, _ = gateway()
    proto = Proto()
    run(gw, Scope("GET", "/boom"), proto)
    assert proto.status == 500
    assert proto.body == b'{"code":"internal_error"}'
    assert proto.answers == 1


def test_an_application_that_sends_nothing_still_gets_the_client_an_answer() -> None:
    async def silent(_scope: Any, _receive: Any, _send: Any) -> None:
        return None

    async def broken(_scope: Any, _receive: Any, _send: Any) -> None:
        raise RuntimeError("before any answer")

    for asgi, status in ((silent, 500), (broken, 500)):
        gw = RsgiGateway(asgi, HotRoutes(HttpStats()))  # type: ignore[arg-type]
        proto = Proto()
        run(gw, Scope("GET", "/anything"), proto)
        assert proto.status == status
        assert proto.answers == 1


def test_start_up_and_shutdown_run_the_application_lifespan() -> None:
    events: list[str] = []
    gw = RsgiGateway(app(events), HotRoutes(HttpStats()))
    loop = asyncio.new_event_loop()
    try:
        gw.__rsgi_init__(loop)
        assert events == ["started"]
        gw.__rsgi_del__(loop)
        assert events == ["started", "stopped"]
        gw.__rsgi_del__(loop)  # once only
        assert events == ["started", "stopped"]
    finally:
        loop.close()


def test_the_start_up_heap_is_frozen_for_the_server_only() -> None:
    loop = asyncio.new_event_loop()
    try:
        plain = RsgiGateway(app([]), HotRoutes(HttpStats()))
        plain.__rsgi_init__(loop)
        assert gc.get_freeze_count() == 0  # embedded (tests): the collector sees everything
        plain.__rsgi_del__(loop)
        server = RsgiGateway(app([]), HotRoutes(HttpStats()), freeze_heap=True)
        server.__rsgi_init__(loop)
        assert gc.get_freeze_count() > 0  # `reelgate serve`: the start-up heap is set aside
        server.__rsgi_del__(loop)
    finally:
        gc.unfreeze()
        loop.close()


def test_a_failed_start_up_exits_the_worker() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    gw = RsgiGateway(Starlette(lifespan=lifespan), HotRoutes(HttpStats()))
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(SystemExit) as exited:
            gw.__rsgi_init__(loop)
        assert exited.value.code == 1
    finally:
        loop.close()


def test_hot_routes_take_one_trailing_parameter() -> None:
    hot = HotRoutes(HttpStats())
    for bad in ("/tasks", "/tasks/{id}/content", "/tasks{id}"):
        with pytest.raises(ValueError, match="one parameter"):
            hot.add(bad, lambda *_: None)
    hot.add("/v1/videos/{video_id}", lambda *_: None)
    assert hot.match("/v1/videos/") is None
    assert hot.match("/v1/videos/a/b") is None
    found = hot.match("/v1/videos/video_1")
    assert found is not None
    assert found[2] == "video_1"


def waiting_gateway(
    waiter: Any = None,
) -> tuple[RsgiGateway, HttpStats, list[tuple[str | None, str | None, str, float]]]:
    gw, stats, _ = gateway()
    waits: list[tuple[str | None, str | None, str, float]] = []

    async def wait(
        authorization: str | None, seen: str | None, task_id: str, seconds: float
    ) -> Answer | None:
        waits.append((authorization, seen, task_id, seconds))
        if task_id != "known":
            return None
        await asyncio.sleep(0)
        return 304, [("etag", 'W/"1.0"')], b""

    gw.hot.add("/tasks/{task_id}", gw.hot.match("/tasks/x")[1], waiter or wait)  # type: ignore[index]
    return gw, stats, waits


@pytest.mark.parametrize(
    ("scope", "seconds"),
    [
        (Scope("GET", "/tasks/known", "wait=5", if_none_match='W/"1.0"'), 5.0),
        (Scope("GET", "/tasks/known", prefer="wait=2.5"), 2.5),
        (Scope("GET", "/tasks/known", "wait=0"), 0.0),
    ],
)
def test_a_long_poll_of_a_hot_route_is_awaited_below_the_application(
    scope: Scope, seconds: float
) -> None:
    gw, stats, waits = waiting_gateway()
    proto = Proto()
    run(gw, scope, proto)
    assert waits == [(None, scope.headers.get("if-none-match"), "known", seconds)]
    assert (proto.status, proto.body) == (304, b"")
    assert [name for name, _ in proto.headers] == ["etag", "x-request-id"]
    assert stats.route("/tasks/{task_id}", "GET").answers == {304: 1}


@pytest.mark.parametrize(
    "scope",
    [
        Scope("GET", "/tasks/known", "wait=5&other=1"),  # more than wait: the application's
        Scope("GET", "/tasks/known", "wait=abc"),  # its 400 comes from the application
        Scope("GET", "/tasks/known", "wait=61"),
        Scope("GET", "/tasks/known", "other=1"),
        Scope("GET", "/tasks/known", prefer="respond-async"),  # Prefer without a wait
        Scope("GET", "/tasks/unknown", "wait=5"),  # declined before waiting
    ],
)
def test_other_long_polls_go_to_the_application(scope: Scope) -> None:
    gw, _, waits = waiting_gateway()
    proto = Proto()
    run(gw, scope, proto)
    assert proto.answers == 1
    assert b'"path":"/tasks/' in proto.body  # the application's echo
    assert all(task_id == "unknown" for _, _, task_id, _ in waits)


def test_a_failing_long_poll_is_a_500_in_the_error_shape() -> None:
    async def broken(*_args: Any) -> Answer | None:
        raise RuntimeError("bug in a long-poll")

    gw, _, _ = waiting_gateway(broken)
    proto = Proto()
    run(gw, Scope("GET", "/tasks/known", "wait=1"), proto)
    assert proto.status == 500
    assert b'"code":"internal_error"' in proto.body


def test_a_client_that_left_is_not_an_unhandled_error(caplog: pytest.LogCaptureFixture) -> None:
    """Found by the hostile corpus: an event stream whose client had gone raised the bridge's
    closed-connection signal into the error handler, which logged it as an unhandled error."""
    from starlette.requests import ClientDisconnect

    from reelgate.api.errors import ClientGone, on_unexpected

    request = Request({"type": "http", "method": "GET", "path": "/v1/x", "headers": []})
    for gone in (ClientGone("the client closed the connection"), ClientDisconnect()):
        answer = asyncio.run(on_unexpected(request, gone))
        assert answer.status_code == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    broken = asyncio.run(on_unexpected(request, RuntimeError("a bug")))
    assert broken.status_code == 500
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "unhandled error"
    ]
