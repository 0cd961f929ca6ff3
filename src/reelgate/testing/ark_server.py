"""The Ark simulator over HTTP: Ark's routes and error bodies with faults injected, the ``/_sim``
control routes, the video files, and running it all under uvicorn (``serve_in_thread`` for tests,
``main`` for ``reelgate simulate ark``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reelgate.providers.render import render_video
from reelgate.testing.ark_callbacks import CallbackSender
from reelgate.testing.ark_errors import ArkError
from reelgate.testing.ark_faults import (
    ERRORS,
    LOST,
    SLOW,
    Fault,
    SlowResponse,
    injected_error,
    misbehave,
    take_fault,
)

if TYPE_CHECKING:
    from reelgate.testing.ark_simulator import ArkSimulator

BASE = "/api/v3/contents/generations/tasks"


def build_app(sim: ArkSimulator) -> Starlette:
    server = _Server(sim)
    return Starlette(
        lifespan=server.lifespan,
        routes=[
            Route(BASE, _Endpoint(server, "create"), methods=["POST"]),
            Route(BASE, _Endpoint(server, "list"), methods=["GET"]),
            Route(BASE + "/{task_id}", _Endpoint(server, "get"), methods=["GET"]),
            Route(BASE + "/{task_id}", _Endpoint(server, "delete"), methods=["DELETE"]),
            Route("/_sim/faults", server.add_fault, methods=["POST"]),
            Route("/_sim/stats", server.stats, methods=["GET"]),
            Route("/_sim/tasks", server.tasks, methods=["GET"]),
            Route("/_sim/reset", server.reset, methods=["POST"]),
            Route("/tos/{name}", server.file, methods=["GET", "HEAD"]),
        ],
    )


class _Server:
    def __init__(self, sim: ArkSimulator) -> None:
        self.sim = sim
        self._media: Path | None = None
        self._render_lock = asyncio.Lock()

    async def handle(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        sim = self.sim
        request = Request(scope, receive)
        request_id = secrets.token_hex(10)
        sim.calls[name] += 1
        with sim.lookups_in_flight(_named_tasks(name, request)):
            fault = take_fault(sim.faults, name)
            try:
                if fault is not None and fault.kind in LOST:
                    if name == "create":  # the create went through; only the answer is lost
                        await self._route(request, name)
                    await misbehave(fault.kind, send, sim.timeout_hang_s)
                    return
                if fault is not None and fault.kind in ERRORS:
                    raise injected_error(fault.kind)
                response = await self._route(request, name)
                if fault is not None and fault.kind == SLOW:
                    response = SlowResponse(bytes(response.body))
            except ArkError as exc:
                response = JSONResponse(
                    {
                        "error": {
                            "code": exc.code,
                            "message": f"{exc.message} Request id: {request_id}",
                            "param": exc.param,
                            "type": "BadRequest",
                        }
                    },
                    status_code=exc.status,
                    headers={"Retry-After": "1"} if exc.status == 429 else None,
                )
            response.headers["X-Request-Id"] = request_id
            await response(scope, receive, send)

    async def _route(self, request: Request, endpoint: str) -> Response:
        sim = self.sim
        key = sim.authorize(request.headers.get("authorization", ""))
        task_id = request.path_params.get("task_id", "")
        if endpoint == "create":
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ArkError(400, "InvalidParameter", "The body is not JSON.") from None
            return JSONResponse({"id": sim.create(key, body).id})
        if endpoint == "get":
            return JSONResponse(sim.lookup(key, task_id))
        if endpoint == "delete":
            sim.cancel(key, task_id)
            return JSONResponse({})
        q = request.query_params
        return JSONResponse(
            sim.list_tasks(
                key,
                ids=set(q.getlist("filter.task_ids")),
                model=q.get("filter.model"),
                status=q.get("filter.status") or None,
                service_tier=q.get("filter.service_tier") or None,
                page_size=int(q.get("page_size", "10")),
                page_num=int(q.get("page_num", "1")),
            )
        )

    # -- control and media --------------------------------------------------------------------
    async def add_fault(self, request: Request) -> Response:
        spec = await request.json()
        self.sim.faults.append(
            Fault(spec["endpoint"], str(spec["kind"]), int(spec.get("count", 1)))
        )
        return JSONResponse({"ok": True})

    async def stats(self, _request: Request) -> Response:
        return JSONResponse(self.sim.stats())

    async def tasks(self, _request: Request) -> Response:
        return JSONResponse({"items": self.sim.task_rows()})

    async def reset(self, _request: Request) -> Response:
        self.sim.reset()
        return JSONResponse({"ok": True})

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        expires = request.query_params.get("X-Tos-Expires", "0")
        if not expires.isdigit() or int(expires) < self.sim.clock():
            return Response(b"AccessDenied: Request has expired", status_code=403)
        media = await self._rendered()
        path = media / ("video.mp4" if name.endswith(".mp4") else "frame.png")
        return FileResponse(path, media_type="video/mp4" if name.endswith(".mp4") else "image/png")

    async def _rendered(self) -> Path:
        """The served MP4 and PNG, rendered once (concurrent first requests wait for it)."""
        async with self._render_lock:
            if self._media is None:
                media = Path(tempfile.mkdtemp(prefix="ark-sim-"))
                await asyncio.to_thread(
                    render_video,
                    media / "video.mp4",
                    prompt="Ark simulator",
                    duration_s=2,
                    width=160,
                    height=90,
                    last_frame_path=media / "frame.png",
                )
                self._media = media
            return self._media

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        sender = asyncio.get_running_loop().create_task(
            CallbackSender(self.sim, interval_s=self.sim.callback_interval_s).run()
        )
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


def _named_tasks(endpoint: str, request: Request) -> set[str]:
    """The task ids a read names: in its path (get) or in ``filter.task_ids`` (list)."""
    if endpoint == "get":
        return {request.path_params["task_id"]}
    if endpoint == "list":
        return set(request.query_params.getlist("filter.task_ids"))
    return set()


class _Endpoint:
    """A raw ASGI endpoint (Starlette calls instances as apps, not as request handlers)."""

    def __init__(self, server: _Server, name: str) -> None:
        self.server = server
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.handle(self.name, scope, receive, send)


@dataclass
class SimulatorHandle:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v3"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(sim: ArkSimulator, host: str = "127.0.0.1", port: int = 0) -> SimulatorHandle:
    """Run ``sim`` under uvicorn in a background thread; real HTTP on loopback."""
    config = uvicorn.Config(sim.app, host=host, port=port, log_level="critical", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("simulator did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}"
    sim.public_url = url
    return SimulatorHandle(url, server, thread)


def main(
    host: str = "127.0.0.1",
    port: int = 9100,
    api_keys: tuple[str, ...] = ("sim-key",),
    **options: Any,
) -> None:
    """``reelgate simulate ark``: run the simulator in the foreground."""
    # Imported here: ark_simulator builds its app from this module, so it cannot be imported above.
    from reelgate.testing.ark_simulator import ArkSimulator

    sim = ArkSimulator(api_keys=set(api_keys), **options)
    sim.public_url = f"http://{host}:{port}"
    uvicorn.run(sim.app, host=host, port=port, log_level="warning")
