"""A wire-level simulator of fal's queue API (``queue.fal.run``) on the shared simulator base.

As ``shared/spec/providers/fal.md`` documents it: ``Authorization: Key …``; submit to
``/{owner}/{app}[/{path}]`` (the body is the model input, checked per endpoint by
``fal_rules``), status, result and cancel under ``/{owner}/{app}/requests/{id}`` only; status
202 while ``IN_QUEUE`` (with ``queue_position``) or ``IN_PROGRESS`` and 200 once ``COMPLETED``
(with ``error``/``error_type`` when it failed); a concurrency cap per key (``concurrency``
runners, 2 like a new account; the rest wait ``IN_QUEUE``, never refused); the start timeout
``X-Fal-Request-Timeout`` (a request not started by then ends ``request_timeout``); cancel of
a queued request; media on its own CDN path for ``media_ttl_s`` (or the request's
``X-Fal-Object-Lifecycle-Preference``); webhooks (``?fal_webhook=``) signed with the
simulator's own Ed25519 key, whose JWKS it serves at ``/.well-known/jwks.json``
(``rotate_key()`` signs with a new one). Prompt markers ``[sim:queued=S]``/``[sim:running=S]``
set one request's timeline. Faults, time, scripted outcomes and counts: the shared base.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing import fal_rules
from reelgate.testing.fal_rules import app_of as _app_of
from reelgate.testing.fal_rules import detail
from reelgate.testing.fal_rules import seconds as _seconds
from reelgate.testing.fal_rules import ttl as _ttl
from reelgate.testing.simulator import Outcome, SampleMedia, UpstreamSimulator
from reelgate.testing.simulator.webhooks import Delivery, sending
from reelgate.testing.simulators import SimulatorEntry, SimulatorOptions

__all__ = ["ENTRY", "FalRequest", "FalSimulator"]

_MARK = re.compile(r"\[sim:(queued|running)=([0-9.]+)\]")
_ERRORS = {  # scripted outcome → (error, error_type) once the request ends
    Outcome.FAILURE: ("Invalid status code: 500", ""),
    Outcome.MODERATION: ("Invalid status code: 422", "content_policy_violation"),
}


@dataclass
class FalRequest:
    id: str
    key: str
    endpoint: str
    app: str
    body: dict[str, Any]
    created_at: float  # simulator time
    outcome: Outcome
    queued_s: float
    running_s: float
    webhook: str = ""
    start_timeout_s: float | None = None
    media_ttl_s: float = 0.0
    cancelled_at: float | None = None
    seq: int = 0


@dataclass
class FalSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    concurrency: int | None = 2  # runners per key (None: as many as there are requests)
    user_id: str = "sim-fal-user"
    media_ttl_s: float = 7 * 24 * 3600.0
    webhook_attempts: int = 3
    webhook_retry_s: float = 1.0
    webhook_timeout_s: float = 15.0
    requests: dict[str, FalRequest] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    # Signing keys, newest first: the first signs, all are published.
    signing_keys: list[Ed25519PrivateKey] = field(
        default_factory=lambda: [Ed25519PrivateKey.generate()]
    )
    media: SampleMedia = field(default_factory=lambda: SampleMedia("fal simulator"))
    _webhooks_sent: set[str] = field(default_factory=set, init=False, repr=False)
    _plans: dict[str, dict[str, tuple[float, float]]] = field(
        default_factory=dict, init=False, repr=False
    )

    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset({"submit"}),
        "lookup": frozenset({"status"}),
        "cancel": frozenset({"cancel"}),
    }

    # -- serving ------------------------------------------------------------------------------
    @property
    def app(self) -> Starlette:
        # Control routes first: the submit route takes any path.
        return Starlette(
            lifespan=self._lifespan, routes=[*self._control_routes(), *self.api_routes()]
        )

    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/.well-known/jwks.json", self._jwks, methods=["GET"]),
            Route("/files/{request_id}/{name}", self._file, methods=["GET"]),
            Route("/{app:path}/requests/{rid}/status", self.endpoint("status", self._status)),
            Route(
                "/{app:path}/requests/{rid}/cancel",
                self.endpoint("cancel", self._cancel),
                methods=["PUT"],
            ),
            Route("/{app:path}/requests/{rid}", self.endpoint("result", self._result)),
            Route("/{endpoint:path}", self.endpoint("submit", self._submit), methods=["POST"]),
        ]

    def injected_error(self, status: int) -> Response:
        if status == 429:
            return detail(429, "Too many requests", "rate_limited")
        return detail(status, "Internal server error", "internal_server_error")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with sending(self):
            yield

    def reset(self) -> None:
        super().reset()
        self.requests.clear()
        self.deliveries.clear()
        self._webhooks_sent.clear()
        self._plans.clear()

    # -- keys and signatures ------------------------------------------------------------------
    def rotate_key(self, *, keep_old: bool = True) -> None:
        """Sign with a new key from now on (the old ones stay published unless told)."""
        fresh = Ed25519PrivateKey.generate()
        self.signing_keys = [fresh, *self.signing_keys] if keep_old else [fresh]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for private in self.signing_keys:
            raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            keys.append({"kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig"})
        return {"keys": keys}

    def sign(self, delivery: Delivery) -> Mapping[str, str]:
        from reelgate.providers.fal.webhooks import signed_message

        timestamp = str(int(self.now()))
        message = signed_message(delivery.task_id, self.user_id, timestamp, delivery.body)
        return {
            "X-Fal-Webhook-Request-Id": delivery.task_id,
            "X-Fal-Webhook-User-Id": self.user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self.signing_keys[0].sign(message).hex(),
        }

    # -- the timeline -------------------------------------------------------------------------
    def _plan(self, key: str) -> dict[str, tuple[float, float]]:
        """When each of a key's requests starts and ends (simulator time): first come, first
        served on ``concurrency`` runners; a cancelled or expiring request never takes one."""
        if key in self._plans:
            return self._plans[key]
        runners: list[float] = []
        plan: dict[str, tuple[float, float]] = {}
        mine = sorted((r for r in self.requests.values() if r.key == key), key=lambda r: r.seq)
        for r in mine:
            ready = r.created_at + r.queued_s / self.time_scale
            if r.outcome is Outcome.EXPIRY:
                continue
            free = min(runners) if self.concurrency and len(runners) >= self.concurrency else 0.0
            start = max(ready, free)
            if r.cancelled_at is not None and r.cancelled_at <= start:
                continue
            limit = r.start_timeout_s
            if limit is not None and start > r.created_at + limit / self.time_scale:
                continue
            end = start + r.running_s / self.time_scale
            if self.concurrency and len(runners) >= self.concurrency:
                runners.remove(free)
            runners.append(end)
            plan[r.id] = (start, end)
        self._plans[key] = plan
        return plan

    def state(self, r: FalRequest) -> tuple[str, str, str]:
        """(status, error, error_type) of a request now."""
        now = self.now()
        slot = self._plan(r.key).get(r.id)
        if slot is None or now < slot[0]:
            if r.cancelled_at is not None and now >= r.cancelled_at:
                return "COMPLETED", "Request was cancelled", "request_cancelled"
            expires = r.created_at + r.queued_s / self.time_scale
            if r.outcome is not Outcome.EXPIRY:
                expires = r.created_at + (r.start_timeout_s or float("inf")) / self.time_scale
            if slot is None and now >= expires:
                return "COMPLETED", "Request timed out before it started", "request_timeout"
            return "IN_QUEUE", "", ""
        if now < slot[1]:
            return ("SUSPENDED" if r.outcome is Outcome.UNKNOWN_STATUS else "IN_PROGRESS"), "", ""
        error, kind = _ERRORS.get(r.outcome, ("", ""))
        return "COMPLETED", error, kind

    def _position(self, r: FalRequest) -> int:
        return sum(
            1
            for o in self.requests.values()
            if o.key == r.key and o.seq < r.seq and self.state(o)[0] == "IN_QUEUE"
        )

    # -- the API ------------------------------------------------------------------------------
    def _key(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key if scheme == "Key" and self.accepts(key) else None

    def _find(self, request: Request, key: str) -> FalRequest | None:
        r = self.requests.get(request.path_params["rid"])
        if r is None or r.key != key or r.app != request.path_params["app"]:
            return None  # another key's, or asked for under another app (or a subpath)
        return r

    def _urls(self, r: FalRequest) -> dict[str, str]:
        base = f"{self.public_url}/{r.app}/requests/{r.id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    async def _submit(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return detail(401, "Invalid authentication credentials")
        endpoint = request.path_params["endpoint"].strip("/")
        if endpoint not in fal_rules.SCHEMAS:
            return detail(404, f"Application '{endpoint}' not found")
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            body = None
        errors = fal_rules.check_input(endpoint, body)
        if errors:
            return JSONResponse({"detail": errors}, status_code=422)
        assert isinstance(body, dict)
        timings = {name: float(value) for name, value in _MARK.findall(body["prompt"])}
        r = FalRequest(
            id=str(uuid.uuid4()),
            key=key,
            endpoint=endpoint,
            app=_app_of(endpoint),
            body=body,
            created_at=self.now(),
            outcome=self.next_outcome(),
            queued_s=timings.get("queued", self.queued_seconds),
            running_s=timings.get("running", self.running_seconds),
            webhook=request.query_params.get("fal_webhook", ""),
            start_timeout_s=_seconds(request.headers.get("x-fal-request-timeout")),
            media_ttl_s=_ttl(request.headers.get("x-fal-object-lifecycle-preference"))
            or self.media_ttl_s,
            seq=len(self.requests),
        )
        self.requests[r.id] = r
        self._plans.pop(key, None)
        self.record_create()
        return JSONResponse(
            {
                "status": "IN_QUEUE",
                "request_id": r.id,
                "gateway_request_id": r.id,
                **self._urls(r),
                "queue_position": self._position(r),
            }
        )

    async def _status(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return detail(401, "Invalid authentication credentials")
        r = self._find(request, key)
        if r is None:
            return detail(404, "Request not found")
        status, error, kind = self.state(r)
        logs: list[dict[str, str]] | None = None
        if request.query_params.get("logs") == "1":
            logs = [] if status == "IN_QUEUE" else [{"message": "working", "level": "INFO"}]
        body: dict[str, Any] = {"status": status, "request_id": r.id, **self._urls(r)}
        body["logs"] = logs
        if status == "IN_QUEUE":
            body["queue_position"] = self._position(r)
        if status == "COMPLETED":
            body["metrics"] = {"inference_time": r.running_s}
            if error:
                body["error"], body["error_type"] = error, kind or None
        return JSONResponse(body, status_code=200 if status == "COMPLETED" else 202)

    async def _result(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return detail(401, "Invalid authentication credentials")
        r = self._find(request, key)
        if r is None:
            return detail(404, "Request not found")
        status, error, kind = self.state(r)
        if status != "COMPLETED":
            return detail(400, "Request is still in progress")
        if kind == "content_policy_violation":
            problem = fal_rules.model_error("prompt", "content policy violation", kind)
            return JSONResponse({"detail": [problem]}, status_code=422)
        if error:
            status_code = {"request_timeout": 504, "request_cancelled": 400}.get(kind, 500)
            return detail(status_code, error, kind)
        return JSONResponse(self._output(r))

    def _output(self, r: FalRequest) -> dict[str, Any]:
        video: dict[str, Any] = {
            "url": f"{self.public_url}/files/{r.id}/output.mp4",
            "content_type": "video/mp4",
            "file_name": "output.mp4",
        }
        if r.endpoint in fal_rules.VIDEO_FILE:
            video["duration"] = float(str(r.body.get("duration", "5")).rstrip("s"))
        return {"video": video, "seed": 42}

    async def _cancel(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return detail(401, "Invalid authentication credentials")
        r = self._find(request, key)
        if r is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        status = self.state(r)[0]
        if status == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        if status == "IN_QUEUE":
            r.cancelled_at = self.now()
            self._plans.pop(r.key, None)
        # A running request gets the signal; a video app finishes regardless.
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def _jwks(self, _request: Request) -> Response:
        return JSONResponse(self.jwks())

    async def _file(self, request: Request) -> Response:
        r = self.requests.get(request.path_params["request_id"])
        if r is None or self.state(r)[:2] != ("COMPLETED", ""):
            return detail(404, "File not found")
        ended = self._plan(r.key)[r.id][1]
        if self.now() > ended + r.media_ttl_s / self.time_scale:
            return detail(404, "File not found")  # expired media are deleted for good
        return await self.media.response(request.path_params["name"])

    # -- webhooks -----------------------------------------------------------------------------
    def due_webhooks(self) -> list[Delivery]:
        due = []
        for r in list(self.requests.values()):
            if not r.webhook or r.id in self._webhooks_sent:
                continue
            status, error, _ = self.state(r)
            if status != "COMPLETED":
                continue
            self._webhooks_sent.add(r.id)
            body: dict[str, Any] = {"request_id": r.id, "gateway_request_id": r.id}
            if error:
                body |= {"status": "ERROR", "error": error, "payload": {"detail": error}}
            else:
                body |= {"status": "OK", "payload": self._output(r)}
            headers = {"Content-Type": "application/json"}
            due.append(Delivery(r.id, r.webhook, json.dumps(body).encode(), headers))
        return due


def _build(options: SimulatorOptions) -> UpstreamSimulator:
    sim = FalSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ENTRY = SimulatorEntry(
    "fal",
    _build,
    "add a fal channel with this base_url and options.jwks_url = <it>/.well-known/jwks.json",
)
