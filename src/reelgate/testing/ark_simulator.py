"""A wire-level simulator of Ark's video-generation task API (Volcengine / BytePlus), in memory.

It answers ``/api/v3/contents/generations/tasks`` like the real service as documented in
``shared/spec/ark-video-api.md``: Bearer auth, ``cgt-…`` ids, the task object, the list filters,
cancel rules, Ark's error bodies, the 120-queued-tasks cap, and video URLs it serves itself.
Its model list is its own (not reelgate's tables), so a mistake there cannot hide here.

Deliveries to ``callback_url`` live in ``ark_callbacks``.

Scripting: prompt markers ``[sim:queued=S]``, ``[sim:running=S]``, ``[sim:fail=CODE]``,
``[sim:reject=CODE]`` (a 400 at create), ``[sim:expire]``, ``[sim:status=TEXT]`` (an unknown
status while running); faults by ``POST /_sim/faults {"endpoint","kind","count"}`` with endpoint
create|get|list|delete|any_read|any and kind 500|429|reset|timeout|malformed|slow;
``GET /_sim/stats``; ``POST /_sim/reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reelgate.providers.render import render_video
from reelgate.testing.ark_callbacks import CallbackSender
from reelgate.testing.ark_errors import ArkError
from reelgate.testing.ark_rules import check_options

BASE = "/api/v3/contents/generations/tasks"
QUEUED_CAP = 120
WINDOW_S = 7 * 24 * 3600
URL_TTL_S = 24 * 3600
# Models as the spec lists them (Volcengine and BytePlus names), with their image roles.
_ALL_ROLES = {"first_frame", "last_frame", "reference_image"}
_MODELS: dict[str, set[str]] = {
    "doubao-seaweed-241128": {"first_frame"},
    "doubao-seedance-1-0-lite-t2v-250428": set(),
    "doubao-seedance-1-0-lite-i2v-250428": _ALL_ROLES,
    "doubao-seedance-1-0-pro-250528": {"first_frame", "last_frame"},
    "doubao-seedance-1-0-pro-fast-251015": {"first_frame"},
    "doubao-seedance-1-5-pro-251215": {"first_frame", "last_frame"},
    "doubao-seedance-2-0-260128": _ALL_ROLES,
    "doubao-seedance-2-0-fast-260128": _ALL_ROLES,
    "doubao-seedance-2-5-260628": _ALL_ROLES,
}
for _name in list(_MODELS):
    _bp = _name.removeprefix("doubao-")
    _MODELS["dreamina-" + _bp if "seedance-2" in _bp else _bp] = _MODELS[_name]
_OPTIONS = {
    "resolution",
    "ratio",
    "duration",
    "frames",
    "seed",
    "camera_fixed",
    "watermark",
    "return_last_frame",
    "callback_url",
    "service_tier",
    "execution_expires_after",
    "generate_audio",
    "draft",
    "priority",
    "safety_identifier",
    "tools",
    "output_format",
}
_PIXELS = {"480p": (864, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
_MARK = re.compile(r"\[sim:(\w+)(?:=([^\]]*))?\]")


@dataclass
class SimTask:
    id: str
    key: str
    model: str
    body: dict[str, Any]
    created_at: float
    queued_s: float
    running_s: float
    outcome: str = "success"  # success | fail | expire
    fail_code: str = ""
    odd_status: str = ""
    cancelled: bool = False


@dataclass
class Fault:
    endpoint: str
    kind: str
    count: int


@dataclass
class ArkSimulator:
    api_keys: set[str]
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    time_scale: float = 1.0
    timeout_hang_s: float = 5.0
    callback_timeout_s: float = 5.0
    callback_retry_s: float = 5.0
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    rpm: int | None = None  # requests per minute per API key; None: unlimited
    _recent: dict[str, list[float]] = field(default_factory=dict)
    tasks: dict[str, SimTask] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    creates_by_prompt: Counter[str] = field(default_factory=Counter)
    creates_by_body: Counter[str] = field(default_factory=Counter)
    public_url: str = ""
    _media: Path | None = None

    # -- time and status ----------------------------------------------------------------------
    def _elapsed(self, task: SimTask) -> float:
        return (self.clock() - task.created_at) * self.time_scale

    def status(self, task: SimTask) -> str:
        elapsed = self._elapsed(task)
        if task.cancelled:
            return "cancelled"
        limit = float(task.body.get("execution_expires_after", 172800))
        if task.outcome == "expire" and elapsed >= task.queued_s:
            return "expired"
        if elapsed >= limit and elapsed < task.queued_s + task.running_s:
            return "expired"  # sat queued/running past its execution_expires_after
        if elapsed < task.queued_s:
            return "queued"
        if elapsed < task.queued_s + task.running_s:
            return task.odd_status or "running"
        return "failed" if task.outcome == "fail" else "succeeded"

    def view(self, task: SimTask) -> dict[str, Any]:
        status = self.status(task)
        body = task.body
        resolution = body.get("resolution", "720p")
        duration = int(body.get("duration", 5))
        width, height = _PIXELS.get(resolution, (1280, 720))
        frames = int(body["frames"]) if "frames" in body else 24 * max(duration, 1) + 1
        out: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": status,
            "error": None,
            "created_at": int(task.created_at),
            "updated_at": int(self.clock()),
            "seed": int(body.get("seed", 12345)),
            "resolution": resolution,
            "ratio": body.get("ratio", "adaptive"),
            "duration": duration,
            "framespersecond": 24,
            "service_tier": body.get("service_tier", "default"),
            "execution_expires_after": int(body.get("execution_expires_after", 172800)),
        }
        if "safety_identifier" in body:
            out["safety_identifier"] = body["safety_identifier"]
        if status == "succeeded":
            tokens = width * height * frames // 1024
            out["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
            out["content"] = {"video_url": self._link(f"{task.id}.mp4")}
            if body.get("return_last_frame"):
                out["content"]["last_frame_url"] = self._link(f"{task.id}.png")
        elif status == "failed":
            out["error"] = {"code": task.fail_code, "message": "The request failed."}
        return out

    def _link(self, name: str) -> str:
        expires = int(self.clock()) + URL_TTL_S
        sig = hashlib.sha256(f"{name}:{expires}".encode()).hexdigest()[:16]
        return f"{self.public_url}/tos/{name}?X-Tos-Expires={expires}&X-Tos-Signature={sig}"

    # -- the API ------------------------------------------------------------------------------
    def _auth(self, request: Request) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key not in self.api_keys:
            raise ArkError(401, "AuthenticationError", "The API key is invalid.")
        if self.rpm is not None:
            now = self.clock()
            recent = [t for t in self._recent.get(key, []) if now - t < 60]
            if len(recent) >= self.rpm:
                raise ArkError(
                    429,
                    "APIAccountRpmRateLimitExceeded",
                    f"The account's {self.rpm} requests per minute are used up.",
                )
            self._recent[key] = [*recent, now]
        return key

    def create(self, key: str, body: Any) -> SimTask:
        if not isinstance(body, dict):
            raise ArkError(400, "InvalidParameter", "The request body is invalid.")
        body = {k: v for k, v in body.items() if v is not None}
        unknown = sorted(set(body) - _OPTIONS - {"model", "content"})
        if unknown:
            raise ArkError(
                400,
                "InvalidParameter.UnsupportedParameter",
                f"The parameter `{unknown[0]}` is not supported.",
                unknown[0],
            )
        model = body.get("model")
        if not model:
            raise ArkError(400, "MissingParameter", "The parameter `model` is missing.", "model")
        if model not in _MODELS:
            raise ArkError(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model {model} does not exist.",
                "model",
            )
        check_options(model, body)
        content = body.get("content")
        if not isinstance(content, list) or not content:
            raise ArkError(
                400, "MissingParameter", "The parameter `content` is missing.", "content"
            )
        text = ""
        for i, item in enumerate(content):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                text += str(item.get("text", ""))
            elif kind == "image_url":
                role = item.get("role", "first_frame")
                if role not in _MODELS[model]:
                    raise ArkError(
                        400,
                        "InvalidParameter",
                        f"The role {role} is not supported by {model}.",
                        f"content[{i}].role",
                    )
            else:
                raise ArkError(
                    400, "InvalidParameter", "Unknown content type.", f"content[{i}].type"
                )
        marks = {m.group(1): m.group(2) or "" for m in _MARK.finditer(text)}
        if "reject" in marks:
            raise ArkError(
                400,
                marks["reject"] or "InputTextSensitiveContentDetected",
                "The request failed because the input text may contain sensitive information.",
            )
        queued = sum(1 for t in self.tasks.values() if t.key == key and self.status(t) == "queued")
        if queued >= QUEUED_CAP:
            raise ArkError(429, "QuotaExceeded", "Too many queued tasks for this account.")
        task = SimTask(
            id=f"cgt-{time.strftime('%Y%m%d%H%M%S', time.gmtime(self.clock()))}-"
            f"{secrets.token_hex(3)[:5]}",
            key=key,
            model=model,
            body=body,
            created_at=self.clock(),
            queued_s=float(marks.get("queued") or self.queued_seconds),
            running_s=float(marks.get("running") or self.running_seconds),
            outcome="fail" if "fail" in marks else "expire" if "expire" in marks else "success",
            fail_code=marks.get("fail") or "OutputVideoSensitiveContentDetected",
            odd_status=marks.get("status", ""),
        )
        self.tasks[task.id] = task
        self.creates_by_prompt[_MARK.sub("", text).strip()] += 1
        self.creates_by_body[
            hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        ] += 1
        return task

    def _find(self, key: str, task_id: str) -> SimTask:
        task = self.tasks.get(task_id)
        if task is None or task.key != key or self.clock() - task.created_at > WINDOW_S:
            raise ArkError(404, "ResourceNotFound", f"The task {task_id} was not found.")
        return task

    async def _route(self, request: Request, endpoint: str) -> Response:
        key = self._auth(request)
        task_id = request.path_params.get("task_id", "")
        if endpoint == "create":
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise ArkError(400, "InvalidParameter", "The body is not JSON.") from None
            return JSONResponse({"id": self.create(key, body).id})
        if endpoint == "get":
            return JSONResponse(self.view(self._find(key, task_id)))
        if endpoint == "delete":
            task = self._find(key, task_id)
            status = self.status(task)
            if status == "queued":
                task.cancelled = True
            elif status in ("succeeded", "failed", "expired"):
                del self.tasks[task.id]
            else:
                raise ArkError(
                    400, "InvalidParameter", f"A {status} task cannot be cancelled.", "id"
                )
            return JSONResponse({})
        q = request.query_params
        ids = set(q.getlist("filter.task_ids"))
        size = int(q.get("page_size", "10"))
        page = int(q.get("page_num", "1"))
        if not (1 <= size <= 500 and 1 <= page <= 500):
            raise ArkError(400, "InvalidParameter", "page_num and page_size are 1..500.")
        items = [
            self.view(t)
            for t in sorted(self.tasks.values(), key=lambda t: -t.created_at)
            if t.key == key
            and self.clock() - t.created_at <= WINDOW_S
            and (not ids or t.id in ids)
            and q.get("filter.model") in (None, t.model)
        ]
        if q.get("filter.status"):
            items = [i for i in items if i["status"] == q["filter.status"]]
        if q.get("filter.service_tier"):
            items = [i for i in items if i["service_tier"] == q["filter.service_tier"]]
        start = (page - 1) * size
        return JSONResponse({"items": items[start : start + size], "total": len(items)})

    def _take_fault(self, endpoint: str) -> Fault | None:
        reads = ("get", "list")
        for fault in self.faults:
            if fault.count > 0 and (
                fault.endpoint in (endpoint, "any")
                or (fault.endpoint == "any_read" and endpoint in reads)
            ):
                fault.count -= 1
                return fault
        return None

    def endpoint(self, name: str) -> _Endpoint:
        return _Endpoint(self, name)

    async def handle(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = secrets.token_hex(10)
        self.calls[name] += 1
        fault = self._take_fault(name)
        try:
            if fault is not None and fault.kind in ("timeout", "malformed", "reset"):
                if name == "create":  # the create went through; only the answer is lost
                    await self._route(request, name)
                await self._misbehave(fault.kind, send)
                return
            if fault is not None and fault.kind in ("500", "429"):
                status = int(fault.kind)
                code = (
                    "InternalServiceError"
                    if status == 500
                    else "RateLimitExceeded.EndpointRPMExceeded"
                )
                raise ArkError(status, code, "Injected fault.")
            response = await self._route(request, name)
            if fault is not None and fault.kind == "slow":
                response = _Slow(bytes(response.body))
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

    async def _misbehave(self, kind: str, send: Send) -> None:
        if kind == "timeout":
            await asyncio.sleep(self.timeout_hang_s)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "cgt-', "more_body": True})
        if kind == "reset":
            raise ConnectionResetError("injected connection reset")
        await send({"type": "http.response.body", "body": b" " * 52})  # malformed: truncated

    # -- control and media --------------------------------------------------------------------
    async def _faults(self, request: Request) -> Response:
        spec = await request.json()
        self.faults.append(Fault(spec["endpoint"], str(spec["kind"]), int(spec.get("count", 1))))
        return JSONResponse({"ok": True})

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "calls": dict(self.calls),
                "creates": sum(self.creates_by_prompt.values()),
                "creates_by_prompt": dict(self.creates_by_prompt),
                "max_creates_per_body": max(self.creates_by_body.values(), default=0),
            }
        )

    async def _reset(self, _request: Request) -> Response:
        self.tasks.clear()
        self.faults.clear()
        self.calls.clear()
        self.creates_by_prompt.clear()
        self.creates_by_body.clear()
        return JSONResponse({"ok": True})

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        expires = request.query_params.get("X-Tos-Expires", "0")
        if not expires.isdigit() or int(expires) < self.clock():
            return Response(b"AccessDenied: Request has expired", status_code=403)
        if self._media is None:
            self._media = Path(tempfile.mkdtemp(prefix="ark-sim-"))
            await asyncio.to_thread(
                render_video,
                self._media / "video.mp4",
                prompt="Ark simulator",
                duration_s=2,
                width=160,
                height=90,
                last_frame_path=self._media / "frame.png",
            )
        path = self._media / ("video.mp4" if name.endswith(".mp4") else "frame.png")
        return FileResponse(path, media_type="video/mp4" if name.endswith(".mp4") else "image/png")

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        sender = asyncio.get_running_loop().create_task(CallbackSender(self).run())
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    @property
    def app(self) -> Starlette:
        return Starlette(
            lifespan=self._lifespan,
            routes=[
                Route(BASE, self.endpoint("create"), methods=["POST"]),
                Route(BASE, self.endpoint("list"), methods=["GET"]),
                Route(BASE + "/{task_id}", self.endpoint("get"), methods=["GET"]),
                Route(BASE + "/{task_id}", self.endpoint("delete"), methods=["DELETE"]),
                Route("/_sim/faults", self._faults, methods=["POST"]),
                Route("/_sim/stats", self._stats, methods=["GET"]),
                Route("/_sim/reset", self._reset, methods=["POST"]),
                Route("/tos/{name}", self._file, methods=["GET", "HEAD"]),
            ],
        )


class _Endpoint:
    """A raw ASGI endpoint (Starlette calls instances as apps, not as request handlers)."""

    def __init__(self, sim: ArkSimulator, name: str) -> None:
        self.sim = sim
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sim.handle(self.name, scope, receive, send)


class _Slow(Response):
    """A correct body, sent a few bytes at a time."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        for i in range(0, len(body), 64):
            await asyncio.sleep(0.02)
            await send(
                {
                    "type": "http.response.body",
                    "body": body[i : i + 64],
                    "more_body": i + 64 < len(body),
                }
            )


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
    sim = ArkSimulator(api_keys=set(api_keys), **options)
    sim.public_url = f"http://{host}:{port}"
    uvicorn.run(sim.app, host=host, port=port, log_level="warning")
