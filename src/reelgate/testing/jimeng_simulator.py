"""A wire-level simulator of Volcengine's visual API for Jimeng video 3.0
(``?Action=CVSync2AsyncSubmitTask`` / ``CVSync2AsyncGetResult``, ``Version=2022-08-31``), on
reelgate's shared simulator base, as ``docs/providers/jimeng.md`` records it.

Every request's HMAC-SHA256 signature is verified (region ``cn-north-1``, service ``cv``, the
access key's secret, ``X-Date`` within 15 minutes, the body's hash); a bad one answers
Volcengine's gateway error (``ResponseMetadata.Error``: ``SignatureDoesNotMatch``,
``InvalidAccessKey``, ``InvalidTimestamp``, ``MissingAuthenticationToken``). Keys are given as
``ACCESS:SECRET``. Business answers carry ``code`` (10000 is success); tasks go ``in_queue`` →
``generating`` → ``done`` (or a failure code), are ``not_found`` after 12 hours, and their
video URL lasts one hour. ``concurrency`` (unset: unlimited) answers ``50430`` beyond it.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from reelgate.providers.jimeng import signer
from reelgate.providers.jimeng.models import FRAMES, MAX_PROMPT, RATIOS, REQ_KEY_RULES
from reelgate.testing.simulator import Outcome, SampleMedia, UpstreamSimulator
from reelgate.testing.simulators import SimulatorEntry, SimulatorOptions

__all__ = ["ENTRY", "JimengSimulator"]

RETENTION_S = 12 * 3600
URL_TTL_S = 3600
SKEW_S = 900  # X-Expires' default: a signature is good for 15 minutes
ACTIONS = {"CVSync2AsyncSubmitTask": "submit", "CVSync2AsyncGetResult": "result"}
_FIELDS = {
    "req_key",
    "prompt",
    "seed",
    "frames",
    "aspect_ratio",
    "image_urls",
    "binary_data_base64",
}
# How a scripted outcome ends: (status shown at the end, code, status while generating).
_SCRIPTED = {
    Outcome.SUCCESS: ("done", 10000, "generating"),
    Outcome.FAILURE: ("done", 50500, "generating"),
    Outcome.MODERATION: ("done", 50516, "generating"),
    Outcome.EXPIRY: ("expired", 10000, "in_queue"),
    Outcome.UNKNOWN_STATUS: ("done", 10000, "paused"),
}
_MESSAGES = {
    10000: "Success",
    50411: "Pre Img Risk Not Pass",
    50412: "Text Risk Not Pass",
    50413: "Post Text Risk Not Pass",
    50429: "Request Has Reached API Limit, Please Try Later",
    50430: "Request Has Reached API Concurrent Limit, Please Try Later",
    50500: "Internal Error",
    50516: "Post Video Risk Not Pass",
}
_HTTP = {10000: 200, 50429: 429, 50430: 429, 50500: 500, 50501: 500}


class GatewayError(Exception):
    def __init__(self, status: int, code: str, number: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.number, self.message = status, code, number, message


@dataclass
class JimengTask:
    id: str
    access_key: str
    req_key: str
    body: dict[str, Any]
    created_at: float
    outcome: Outcome


@dataclass
class JimengSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    concurrency: int | None = None
    tasks: dict[str, JimengTask] = field(default_factory=dict)
    bad_signatures: int = 0
    media: SampleMedia = field(default_factory=lambda: SampleMedia("Jimeng simulator"))

    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[dict[str, frozenset[str]]] = {
        "create": frozenset({"submit"}),
        "lookup": frozenset({"result"}),
        "cancel": frozenset(),
    }

    def secrets_by_access_key(self) -> dict[str, str]:
        return dict(key.partition(":")[::2] for key in self.api_keys if ":" in key)

    # -- state --------------------------------------------------------------------------------
    def status(self, task: JimengTask) -> tuple[str, int]:
        elapsed = (self.now() - task.created_at) * self.time_scale
        end, code, running = _SCRIPTED[task.outcome]
        if elapsed < self.queued_seconds:
            return "in_queue", 10000
        if end == "expired":
            return "expired", 10000
        if elapsed < self.queued_seconds + self.running_seconds:
            return running, 10000
        return end, code

    def _unfinished(self, access_key: str) -> int:
        return sum(
            1
            for t in self.tasks.values()
            if t.access_key == access_key and self.status(t)[0] in ("in_queue", "generating")
        )

    # -- HTTP ---------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/", _ByAction(self), methods=["POST"]),
            Route("/files/{name}", self._file, methods=["GET", "HEAD"]),
        ]

    def injected_error(self, status: int) -> Response:
        code = 50429 if status == 429 else 50500
        return _business(code, None, status=status)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            access_key = self._authenticate(request, body)
        except GatewayError as exc:
            if exc.code in ("SignatureDoesNotMatch", "InvalidAccessKey", "InvalidTimestamp"):
                self.bad_signatures += 1
            return _gateway(request, exc)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _business(50400, None, status=400, message="Invalid Request Body")
        if request.query_params["Action"] == "CVSync2AsyncSubmitTask":
            return self._submit(access_key, payload)
        return self._result(access_key, payload)

    def _authenticate(self, request: Request, body: bytes) -> str:
        query = request.query_params
        if query.get("Version") != "2022-08-31" or query.get("Action") not in ACTIONS:
            action, version = query.get("Action", ""), query.get("Version", "")
            why = f"Could not find operation {action} for version {version}."
            raise GatewayError(404, "InvalidActionOrVersion", 100008, why)
        header = request.headers.get("authorization", "")
        if not header:
            raise GatewayError(401, "MissingAuthenticationToken", 100003,
                               "Request is missing Authentication Token.")  # fmt: skip
        auth = signer.parse_authorization(header)
        known = self.secrets_by_access_key()
        if auth is None:
            raise GatewayError(401, "SignatureDoesNotMatch", 100010, _MISMATCH)
        if auth.access_key not in known:
            raise GatewayError(
                401,
                "InvalidAccessKey",
                100009,
                f"The accesskey [{auth.access_key}] included in the request is invalid.",
            )
        x_date = request.headers.get("x-date", "")
        try:
            sent = calendar.timegm(time.strptime(x_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise GatewayError(400, "MissingRequestInfo", 100004,
                               "The request is missing X-Date information.") from None  # fmt: skip
        if abs(self.now() - sent) > SKEW_S:
            raise GatewayError(
                400, "InvalidTimestamp", 100006, "The Signature of the request is expired."
            )
        declared = request.headers.get("x-content-sha256")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if (
            not {"host", "x-date"} <= set(auth.signed)
            or auth.date != x_date[:8]
            or (auth.region, auth.service) != ("cn-north-1", "cv")
            or (declared is not None and declared != hashlib.sha256(body).hexdigest())
            or not signer.matches(
                auth,
                known[auth.access_key],
                method=request.method,
                path=request.url.path,
                query=request.query_params.multi_items(),
                headers=headers,
                body=body,
            )
        ):
            raise GatewayError(401, "SignatureDoesNotMatch", 100010, _MISMATCH)
        return auth.access_key

    def _submit(self, access_key: str, body: dict[str, Any]) -> Response:
        key = body.get("req_key")
        problem = _problem(body)
        if problem:
            return _business(50400, None, status=400, message=f"Invalid Parameter: {problem}")
        text = str(body.get("prompt") or "")
        if "[sim:reject]" in text:
            return _business(50412, None, status=400)
        if self.concurrency is not None and self._unfinished(access_key) >= self.concurrency:
            return _business(50430, None, status=429)
        task = JimengTask(
            id=str(secrets.randbelow(9 * 10**18) + 10**18),
            access_key=access_key,
            req_key=str(key),
            body=body,
            created_at=self.now(),
            outcome=self.next_outcome(),
        )
        self.tasks[task.id] = task
        self.record_create()
        return _business(10000, {"task_id": task.id})

    def _result(self, access_key: str, body: dict[str, Any]) -> Response:
        task = self.tasks.get(str(body.get("task_id")))
        if (
            task is None
            or task.access_key != access_key
            or task.req_key != body.get("req_key")
            or (self.now() - task.created_at) * self.time_scale > RETENTION_S
        ):
            return _business(10000, {"status": "not_found", "video_url": ""})
        status, code = self.status(task)
        if code != 10000:
            # A moderated output answers the code with no data; a failure says done beside it.
            ended = None if code in (50516,) else {"status": "done", "video_url": ""}
            return _business(code, ended, status=_HTTP.get(code, 400))
        data: dict[str, Any] = {"status": status, "video_url": ""}
        if status == "done":
            expires = int(self.now()) + URL_TTL_S
            data["video_url"] = f"{self.public_url}/files/{task.id}.mp4?x-expires={expires}"
        return _business(10000, data)

    async def _file(self, request: Request) -> Response:
        expires = request.query_params.get("x-expires", "")
        if not expires.isdigit() or int(expires) < self.now():
            return Response(b"expired", status_code=403)
        return await self.media.response(request.path_params["name"])

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()
        self.bad_signatures = 0

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "bad_signatures": self.bad_signatures}


def _problem(body: dict[str, Any]) -> str:
    """The first field of a submit body Volcengine would refuse ("" when it takes it)."""
    key = body.get("req_key")
    rule = REQ_KEY_RULES.get(key) if isinstance(key, str) else None
    if rule is None:
        return "req_key"
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return unknown[0]
    if body.get("frames", 121) not in FRAMES.values():
        return "frames"
    if "aspect_ratio" in body and (not rule[0] or body["aspect_ratio"] not in RATIOS):
        return "aspect_ratio"
    if body.get("image_urls") and body.get("binary_data_base64"):
        return "image_urls"
    images = body.get("image_urls") or body.get("binary_data_base64") or []
    if not isinstance(images, list) or len(images) not in rule[1]:
        return "images"
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT:
        return "prompt"
    return ""


class _ByAction:
    """One URL, several endpoints: the ``Action`` query parameter names the one (so faults and
    counts apply per action)."""

    def __init__(self, sim: JimengSimulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        action = Request(scope).query_params.get("Action", "")
        await self.sim.serve(ACTIONS.get(action, "unknown"), self.sim.handle, scope, receive, send)


_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your Secret Access Key and signing method. Consult the service documentation for details."
)


def _request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def _business(code: int, data: Any, *, status: int = 200, message: str = "") -> Response:
    return JSONResponse(
        {
            "code": code,
            "data": data,
            "message": message or _MESSAGES.get(code, "Error"),
            "request_id": _request_id(),
            "status": code,
            "time_elapsed": "12.345ms",
        },
        status_code=status,
    )


def _gateway(request: Request, exc: GatewayError) -> Response:
    return JSONResponse(
        {
            "ResponseMetadata": {
                "RequestId": _request_id(),
                "Action": request.query_params.get("Action", ""),
                "Version": request.query_params.get("Version", ""),
                "Service": "cv",
                "Region": "cn-north-1",
                "Error": {"CodeN": exc.number, "Code": exc.code, "Message": exc.message},
            }
        },
        status_code=exc.status,
    )


def _build(options: SimulatorOptions) -> UpstreamSimulator:
    sim = JimengSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ENTRY = SimulatorEntry(
    "jimeng",
    _build,
    "keys are ACCESS:SECRET pairs; add a jimeng channel with this base_url and that secret",
)
