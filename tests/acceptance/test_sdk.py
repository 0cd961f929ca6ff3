"""The Python SDK end to end: ``reelgate.Client`` and ``reelgate.AsyncClient`` against a live
server (sandbox), and through a real HTTP proxy on loopback that fails on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import reelgate
from reelgate.render import probe_video
from tests.conftest import LiveServer, free_port
from tests.integration.test_cli import cli

FAST = {"queue_seconds": 0.2, "run_seconds": 0.3}
SMALL: dict[str, Any] = {"duration": 1, "size": "160x120"}
# Long enough in each state for the worker to see it (the stream shows what it sees).
PHASED = {"queue_seconds": 0.5, "run_seconds": 1.0}
STATUSES = ["queued", "in_progress", "success"]


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[reelgate.Client]:
    with reelgate.Client(live_server.url, live_server.token) as c:
        yield c


def new_token(server: LiveServer) -> str:
    """A second API token, made with the CLI in the server's working directory."""
    return cli(server, "token", "create", "--name", "sdk-test").stdout.strip()


class FlakyProxy:
    """A real HTTP proxy in front of the live server: it answers the first ``fail_creates``
    creates with 503 (Retry-After: 1), cuts the first event stream after its first event, and
    can play a server without the ``/content`` route."""

    def __init__(
        self,
        upstream: str,
        *,
        fail_creates: int = 0,
        cut_events: bool = False,
        without_content: bool = False,
    ) -> None:
        self.upstream = upstream
        self.fail_creates = fail_creates
        self.cut_events = cut_events
        self.without_content = without_content
        self.create_keys: list[str | None] = []
        self.last_event_ids: list[str | None] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])

    async def forward(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/video/generations":
            self.create_keys.append(request.headers.get("idempotency-key"))
            if len(self.create_keys) <= self.fail_creates:
                body = b'{"code":"store_unavailable","message":"try again","data":null}'
                return Response(body, 503, {"Retry-After": "1"}, "application/json")
        if self.without_content and path.endswith("/content"):
            body = b'{"code":"not_found","message":"no route","data":null}'
            return Response(body, 404, media_type="application/json")
        if path.endswith("/events"):
            self.last_event_ids.append(request.headers.get("last-event-id"))
            cut = self.cut_events and len(self.last_event_ids) == 1
            return StreamingResponse(self._events(request, cut), media_type="text/event-stream")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=90) as upstream:
            answer = await upstream.request(
                request.method,
                path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        keep = ("content-type", "etag", "retry-after", "openai-poll-after-ms")
        return Response(
            answer.content,
            answer.status_code,
            {k: answer.headers[k] for k in keep if k in answer.headers},
        )

    async def _events(self, request: Request, cut: bool) -> AsyncIterator[bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            httpx.AsyncClient(base_url=self.upstream, timeout=90) as upstream,
            upstream.stream("GET", request.url.path, headers=headers) as answer,
        ):
            buffer = b""
            async for chunk in answer.aiter_raw():
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    yield block + b"\n\n"
                    if cut and block.startswith(b"event:"):
                        # Abort mid-response: the client sees the connection drop.
                        raise ConnectionAbortedError("cut on purpose")


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on loopback; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "proxy did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_create_then_wait_until_success(client: reelgate.Client) -> None:
    task = client.create("sandbox-t2v", "a paper boat", metadata=FAST, **SMALL)
    assert task.task_id.startswith("task_")
    assert (task.status, task.model) == ("queued", "sandbox-t2v")
    seen: list[reelgate.Task] = []
    done = client.wait(task.task_id, timeout=60, on_progress=seen.append)
    assert (done.status, done.progress, done.error) == ("success", "100%", None)
    assert done.done
    assert done.result_url.startswith("http://")
    assert done.result_url == done.fail_reason  # the seed's field, kept as it documents it
    assert done.finish_time >= done.start_time >= done.submit_time > 0
    statuses = [t.status for t in seen]
    assert statuses[-1] == "success"
    assert statuses == [s for s in STATUSES if s in statuses]  # in order, each state once
    assert client.get(task.task_id).model_dump() == done.model_dump()


def test_stream_yields_each_status_then_ends(client: reelgate.Client) -> None:
    task = client.create("sandbox-t2v", "stream me", metadata=PHASED, **SMALL)
    streamed = list(client.stream(task.task_id))
    assert [t.status for t in streamed] == STATUSES
    assert streamed[-1].model_dump() == client.get(task.task_id).model_dump()


def test_stream_resumes_after_a_dropped_connection(live_server: LiveServer) -> None:
    proxy = FlakyProxy(live_server.url, cut_events=True)
    slept: list[float] = []
    with serve(proxy.app) as url, reelgate.Client(url, live_server.token, sleep=slept.append) as c:
        task = c.create("sandbox-t2v", "cut", metadata=PHASED, **SMALL)
        streamed = [t.status for t in c.stream(task.task_id)]
    assert streamed == STATUSES  # nothing missed, nothing twice
    assert len(proxy.last_event_ids) == 2
    first, resumed = proxy.last_event_ids
    assert first is None
    assert resumed is not None
    assert resumed.isdigit()
    assert slept == [2.0]  # the server's "retry: 2000", through the injected sleep


def test_cancel_a_queued_task(client: reelgate.Client) -> None:
    task = client.create("sandbox-t2v", "never", metadata={"queue_seconds": 60}, **SMALL)
    cancelled = client.cancel(task.task_id)
    assert cancelled.status == "failure"
    assert cancelled.error is not None
    assert cancelled.error.code == "cancelled"
    assert client.get(task.task_id).status == "failure"
    done = client.create_and_wait("sandbox-t2v", "finished", metadata=FAST, **SMALL)
    with pytest.raises(reelgate.ConflictError) as caught:
        client.cancel(done.task_id)
    assert (caught.value.status, caught.value.code) == (409, "not_cancellable")


def test_wait_gives_up_after_its_timeout(client: reelgate.Client) -> None:
    task = client.create("sandbox-t2v", "slow", metadata={"queue_seconds": 60}, **SMALL)
    started = time.monotonic()
    with pytest.raises(reelgate.WaitTimeoutError) as caught:
        client.wait(task.task_id, timeout=0.5)
    assert time.monotonic() - started < 10
    assert caught.value.code == "wait_timeout"
    assert caught.value.task.status == "queued"
    client.cancel(task.task_id)


def test_list_pages_through_one_tokens_tasks_only(
    live_server: LiveServer, client: reelgate.Client
) -> None:
    with reelgate.Client(live_server.url, new_token(live_server)) as mine:
        ids = [
            mine.create("sandbox-t2v", f"list {i}", metadata={"queue_seconds": 60}, **SMALL).task_id
            for i in range(5)
        ]
        newest_first = list(reversed(ids))
        page = mine.list(limit=2)
        assert [t.task_id for t in page.data] == newest_first[:2]
        assert page.has_more
        assert page.next_after == newest_first[1]
        assert [t.task_id for t in page] == newest_first  # iterating goes on to later pages
        assert [t.task_id for t in mine.list_all(limit=2, status="queued")] == newest_first
        assert list(mine.list_all(status="success")) == []
        for task_id in ids:
            mine.cancel(task_id)
        assert [t.task_id for t in mine.list_all(limit=3)] == newest_first
    assert not set(ids) & {t.task_id for t in client.list_all(limit=100)}


def test_download_streams_a_playable_mp4(client: reelgate.Client, tmp_path: Path) -> None:
    done = client.create_and_wait("sandbox-t2v", "download me", metadata=FAST, **SMALL)
    video = client.download(done.task_id, tmp_path / "boat.mp4")
    assert video == tmp_path / "boat.mp4"
    info = probe_video(video)
    assert (info.width, info.height, info.codec) == (160, 120, "h264")
    assert info.frames >= 1
    frame = client.download(done.task_id, tmp_path, variant="last_frame")
    assert frame.parent == tmp_path
    with Image.open(frame) as image:
        assert image.size == (160, 120)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["boat.mp4", frame.name])


def test_download_falls_back_to_the_tasks_link(live_server: LiveServer, tmp_path: Path) -> None:
    """A server without ``GET …/content`` (404 not_found): the file comes from ``result_url``."""
    proxy = FlakyProxy(live_server.url, without_content=True)
    with serve(proxy.app) as url, reelgate.Client(url, live_server.token) as c:
        done = c.create_and_wait("sandbox-t2v", "fallback", metadata=FAST, **SMALL)
        video = c.download(done.task_id, tmp_path / "v.mp4")
        assert probe_video(video).width == 160
        queued = c.create("sandbox-t2v", "not yet", metadata={"queue_seconds": 60}, **SMALL)
        with pytest.raises(reelgate.NoContentError) as caught:
            c.download(queued.task_id, tmp_path / "never.mp4")
        assert caught.value.code == "no_content"
        c.cancel(queued.task_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_errors_carry_the_servers_codes(live_server: LiveServer, client: reelgate.Client) -> None:
    with pytest.raises(reelgate.NotFoundError) as missing:
        client.get("task_nope")
    assert (missing.value.status, missing.value.code) == (404, "task_not_found")
    assert isinstance(missing.value, reelgate.APIError)
    assert isinstance(missing.value, reelgate.ReelgateClientError)
    with pytest.raises(reelgate.BadRequestError) as bad:
        client.create("no-such-model", "x")
    assert bad.value.code == "model_not_found"
    task = client.create("sandbox-t2v", "x", metadata=FAST, **SMALL)
    with pytest.raises(reelgate.BadRequestError) as too_long:
        client.get(task.task_id, wait=61)
    assert (too_long.value.code, too_long.value.param) == ("invalid_parameter", "wait")
    with (
        reelgate.Client(live_server.url, "rg_not_a_token") as stranger,
        pytest.raises(reelgate.AuthenticationError) as denied,
    ):
        stranger.list()
    assert (denied.value.status, denied.value.code) == (401, "invalid_token")


def test_a_retried_create_makes_exactly_one_task(live_server: LiveServer) -> None:
    token = new_token(live_server)
    proxy = FlakyProxy(live_server.url, fail_creates=1)
    slept: list[float] = []
    with serve(proxy.app) as url, reelgate.Client(url, token, sleep=slept.append) as c:
        task = c.create("sandbox-t2v", "once", metadata={"queue_seconds": 60}, **SMALL)
        assert slept == [1.0]  # Retry-After honoured
        first, second = proxy.create_keys
        assert first == second
        assert first is not None
        assert [t.task_id for t in c.list_all()] == [task.task_id]
        # The caller's own key: the same key and body answer the same task.
        slow = {"queue_seconds": 60}
        again = c.create("sandbox-t2v", "mine", idempotency_key="k-1", metadata=slow, **SMALL)
        same = c.create("sandbox-t2v", "mine", idempotency_key="k-1", metadata=slow, **SMALL)
        assert same.task_id == again.task_id
        assert proxy.create_keys[2:] == ["k-1", "k-1"]
        with pytest.raises(reelgate.ConflictError) as reused:
            c.create("sandbox-t2v", "other", idempotency_key="k-1", metadata=slow, **SMALL)
        assert reused.value.code == "idempotency_key_reused"
        for t in c.list_all():
            c.cancel(t.task_id)


def test_connection_errors_are_retried_with_backoff_then_raised() -> None:
    slept: list[float] = []
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        reelgate.Client(closed, "rg_x", max_retries=3, sleep=slept.append) as c,
        pytest.raises(reelgate.APIConnectionError) as caught,
    ):
        c.get("task_x")
    assert caught.value.code == "connection_error"
    assert len(slept) == 3
    assert all(0.75 * d <= s <= d for s, d in zip(slept, [0.5, 1.0, 2.0], strict=True))


def test_the_async_client(live_server: LiveServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with reelgate.AsyncClient(live_server.url, live_server.token) as c:
            task = await c.create("sandbox-t2v", "async", metadata=FAST, **SMALL)
            seen: list[str] = []
            done = await c.wait(
                task.task_id, timeout=60, on_progress=lambda t: seen.append(t.status)
            )
            assert done.status == seen[-1] == "success"
            streamed = c.stream(
                (await c.create("sandbox-t2v", "s", metadata=PHASED, **SMALL)).task_id
            )
            assert [t.status async for t in streamed] == STATUSES
            page = await c.list(limit=1)
            assert len(page.data) == 1
            assert len([t async for t in page]) >= 2  # goes on past the first page
            first_two: list[str] = []
            async for t in c.list_all(limit=1):  # one task a page
                first_two.append(t.task_id)
                if len(first_two) == 2:
                    break
            assert first_two == [t.task_id for t in (await c.list(limit=2)).data]
            queued = await c.create("sandbox-t2v", "never", metadata={"queue_seconds": 60}, **SMALL)
            assert (await c.cancel(queued.task_id)).status == "failure"
            path = await c.download(done.task_id, tmp_path / "async.mp4")
            assert probe_video(path).width == 160
            with pytest.raises(reelgate.NotFoundError):
                await c.get("task_nope")
            finished = await c.create_and_wait("sandbox-t2v", "both", metadata=FAST, **SMALL)
            assert finished.status == "success"

    asyncio.run(scenario())
