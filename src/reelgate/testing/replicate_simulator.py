"""A wire-level simulator of Replicate's predictions API on the shared simulator base.

As ``shared/spec/providers/replicate.md`` documents it: ``Authorization: Bearer`` (or the
legacy ``Token``); predictions of official models (``POST /v1/models/{owner}/{name}/predictions``)
and of versions (``POST /v1/predictions`` with ``version``), inputs checked per model
(``replicate_rules``); ``starting`` → ``processing`` → ``succeeded``/``failed``/``canceled``, and
``aborted`` when the ``Cancel-After`` deadline passes before the prediction started (``canceled``
when it passes while running); runs time out after 30 minutes; outputs (and inputs, logs) are
removed ``retention_s`` (an hour) after the end (``data_removed``); cancel of any unfinished
prediction; the list with ``created_after``/``created_before`` and cursor pages; rate limits (600
creates and 3000 other requests a minute per token: 429 with ``Retry-After``); webhooks
(``webhook_events_filter``: ``start``, ``completed``) signed as Standard Webhooks with the
account's secret, served at ``GET /v1/webhooks/default/secret`` (``rotate_secret()`` changes it).
``Prefer: wait`` is accepted and answered at once (as a wait that timed out). Prompt markers
``[sim:queued=S]``/``[sim:running=S]`` set one prediction's timeline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing import replicate_rules as rules
from reelgate.testing.replicate_rules import duration as _duration
from reelgate.testing.replicate_rules import epoch as _epoch
from reelgate.testing.replicate_rules import iso as _iso
from reelgate.testing.replicate_rules import problem
from reelgate.testing.simulator import Outcome, SampleMedia, UpstreamSimulator
from reelgate.testing.simulator.webhooks import Delivery, sending
from reelgate.testing.simulators import SimulatorEntry, SimulatorOptions

__all__ = ["ENTRY", "Prediction", "ReplicateSimulator"]

_MARK = re.compile(r"\[sim:(queued|running)=([0-9.]+)\]")
RUN_LIMIT_S = 30 * 60.0
PAGE = 100
_FAILURES = {
    Outcome.FAILURE: "Prediction failed: CUDA error: out of memory",
    Outcome.MODERATION: "The input or output was flagged as sensitive. Please try again with "
    "different inputs. (E005)",
}


@dataclass
class Prediction:
    id: str
    key: str
    model: str
    version: str
    input: dict[str, Any]
    created_at: float
    outcome: Outcome
    queued_s: float
    running_s: float
    webhook: str = ""
    events: tuple[str, ...] = ()
    deadline_s: float | None = None  # Cancel-After, from creation (upstream seconds)
    cancelled_at: float | None = None
    seq: int = 0


@dataclass
class ReplicateSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    retention_s: float = 3600.0
    create_rpm: int | None = 600
    other_rpm: int | None = 3000
    webhook_attempts: int = 3
    webhook_retry_s: float = 1.0
    webhook_timeout_s: float = 10.0
    predictions: dict[str, Prediction] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    # The account's webhook signing secret, per API token.
    secrets: dict[str, str] = field(default_factory=dict)
    media: SampleMedia = field(default_factory=lambda: SampleMedia("Replicate simulator"))
    _sent: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)
    _recent: dict[tuple[str, str], deque[float]] = field(
        default_factory=dict, init=False, repr=False
    )

    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset({"create", "create_version"}),
        "lookup": frozenset({"get"}),
        "cancel": frozenset({"cancel"}),
    }

    def api_routes(self) -> list[BaseRoute]:
        e = self.endpoint
        return [
            Route(
                "/v1/models/{owner}/{name}/predictions",
                e("create", self._create_model),
                methods=["POST"],
            ),
            Route("/v1/predictions", e("create_version", self._create_version), methods=["POST"]),
            Route("/v1/predictions", e("list", self._list), methods=["GET"]),
            Route("/v1/predictions/{id}", e("get", self._get), methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", e("cancel", self._cancel), methods=["POST"]),
            Route("/v1/webhooks/default/secret", e("secret", self._secret), methods=["GET"]),
            Route("/v1/account", e("account", self._account), methods=["GET"]),
            Route("/files/{id}/{name}", self._file, methods=["GET"]),
        ]

    def injected_error(self, status: int) -> Response:
        if status == 429:
            return problem(
                429, "Too Many Requests", "Request was throttled.", **{"Retry-After": "30"}
            )
        return problem(status, "Internal Server Error", "Something went wrong")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with sending(self):
            yield

    def reset(self) -> None:
        super().reset()
        self.predictions.clear()
        self.deliveries.clear()
        self._sent.clear()
        self._recent.clear()

    # -- secrets ------------------------------------------------------------------------------
    def secret(self, key: str) -> str:
        if key not in self.secrets:
            self.secrets[key] = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return self.secrets[key]

    def rotate_secret(self, key: str) -> str:
        self.secrets.pop(key, None)
        return self.secret(key)

    def sign(self, delivery: Delivery) -> Mapping[str, str]:
        from reelgate.providers.replicate.webhooks import secret_key, signature

        owner = self.predictions[delivery.task_id].key
        hmac_key = secret_key(self.secret(owner))
        assert hmac_key is not None
        timestamp = str(int(self.now()))
        webhook_id = delivery.headers["webhook-id"]
        return {
            "webhook-timestamp": timestamp,
            "webhook-signature": signature(hmac_key, webhook_id, timestamp, delivery.body),
        }

    # -- the timeline -------------------------------------------------------------------------
    def times(self, p: Prediction) -> tuple[float, float, str]:
        """(start, end, final status) in simulator time; start == end: it never ran."""
        scale = self.time_scale
        start = p.created_at + p.queued_s / scale
        end = start + min(p.running_s, RUN_LIMIT_S) / scale
        final = "failed" if p.outcome in _FAILURES or p.running_s > RUN_LIMIT_S else "succeeded"
        deadline = None if p.deadline_s is None else p.created_at + p.deadline_s / scale
        if p.outcome is Outcome.EXPIRY:
            deadline = start if deadline is None else min(deadline, start)
        stop = min(x for x in (deadline, p.cancelled_at, float("inf")) if x is not None)
        if stop <= start:
            return stop, stop, "canceled" if stop == p.cancelled_at else "aborted"
        if stop < end:
            return start, stop, "canceled"
        return start, end, final

    def status(self, p: Prediction) -> str:
        now = self.now()
        start, end, final = self.times(p)
        if now >= end:
            return final
        if now < start:
            return "starting"
        return "suspended" if p.outcome is Outcome.UNKNOWN_STATUS else "processing"

    def view(self, p: Prediction) -> dict[str, Any]:
        start, end, _final = self.times(p)
        status = self.status(p)
        done = status in ("succeeded", "failed", "canceled", "aborted")
        removed = done and self.now() >= end + self.retention_s / self.time_scale
        urls = {
            "web": f"https://replicate.com/p/{p.id}",
            "get": f"{self.public_url}/v1/predictions/{p.id}",
            "cancel": f"{self.public_url}/v1/predictions/{p.id}/cancel",
        }
        view: dict[str, Any] = {
            "id": p.id,
            "model": p.model,
            "version": p.version,
            "input": {} if removed else p.input,
            "logs": "" if removed or status == "starting" else "frame 1/24\n",
            "output": None,
            "data_removed": removed,
            "error": None,
            "status": status,
            "created_at": _iso(p.created_at),
            "started_at": _iso(start) if self.now() >= start and start < end else None,
            "completed_at": _iso(end) if done else None,
            "deadline": _iso(p.created_at + p.deadline_s / self.time_scale)
            if p.deadline_s is not None
            else None,
            "source": "api",
            "urls": urls,
        }
        if status == "succeeded" and not removed:
            view["output"] = f"{self.public_url}/files/{p.id}/output.mp4"
        if status == "failed":
            view["error"] = _FAILURES.get(p.outcome, "Prediction timed out")
        if done:
            view["metrics"] = {"predict_time": max(0.0, (end - start) * self.time_scale)}
        return view

    # -- the API ------------------------------------------------------------------------------
    def _key(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key if scheme in ("Bearer", "Token") and self.accepts(key) else None

    def _throttled(self, key: str, kind: str) -> Response | None:
        limit = self.create_rpm if kind == "create" else self.other_rpm
        if limit is None:
            return None
        window = self._recent.setdefault((key, kind), deque())
        now = self.now()
        while window and window[0] <= now - 60.0 / self.time_scale:
            window.popleft()
        if len(window) >= limit:
            wait = max(1, int(window[0] + 60.0 / self.time_scale - now) + 1)
            return problem(
                429,
                "Too Many Requests",
                f"Request was throttled. Your rate limit resets in ~{wait}s.",
                **{"Retry-After": str(wait)},
            )
        window.append(now)
        return None

    def _gate(self, request: Request, kind: str) -> tuple[str | None, Response | None]:
        key = self._key(request)
        if key is None:
            return None, problem(
                401, "Unauthenticated", "You did not pass a valid authentication token"
            )
        return key, self._throttled(key, kind)

    async def _create_model(self, request: Request) -> Response:
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self._create(request, model, rules.version_of(model))

    async def _create_version(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            body = None
        raw = body.get("version") if isinstance(body, dict) else None
        version = str(raw or "").rpartition(":")[2]
        model = rules.VERSIONS.get(version) or (str(raw) if str(raw) in rules.SCHEMAS else "")
        if not model:
            _key, refused = self._gate(request, "create")
            return refused or problem(422, "Invalid version", "Invalid version or not permitted")
        return await self._create(request, model, rules.version_of(model), body=body)

    async def _create(
        self, request: Request, model: str, version: str, body: Any = None
    ) -> Response:
        key, refused = self._gate(request, "create")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        if model not in rules.SCHEMAS:
            return problem(404, "Not found", f"Model {model} does not exist")
        if body is None:
            try:
                body = json.loads(await request.body())
            except (ValueError, RecursionError):
                return problem(400, "Bad request", "The body is not JSON")
        given = body.get("input") if isinstance(body, dict) else None
        why = rules.check_input(model, given)
        if why is not None:
            return problem(422, "Input validation failed", why)
        assert isinstance(body, dict)
        assert isinstance(given, dict)
        timings = {name: float(v) for name, v in _MARK.findall(str(given["prompt"]))}
        events = body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
        p = Prediction(
            id=secrets.token_hex(13)[:26],
            key=key,
            model=model,
            version=version,
            input=given,
            created_at=self.now(),
            outcome=self.next_outcome(),
            queued_s=timings.get("queued", self.queued_seconds),
            running_s=timings.get("running", self.running_seconds),
            webhook=str(body.get("webhook") or ""),
            events=tuple(str(e) for e in events),
            deadline_s=_duration(request.headers.get("cancel-after")),
            seq=len(self.predictions),
        )
        self.predictions[p.id] = p
        self.record_create()
        return JSONResponse(self.view(p), status_code=201)

    def _mine(self, request: Request, key: str) -> Prediction | None:
        p = self.predictions.get(request.path_params["id"])
        return p if p is not None and p.key == key else None

    async def _get(self, request: Request) -> Response:
        key, refused = self._gate(request, "other")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        p = self._mine(request, key)
        if p is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        return JSONResponse(self.view(p))

    async def _cancel(self, request: Request) -> Response:
        key, refused = self._gate(request, "other")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        p = self._mine(request, key)
        if p is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        if self.status(p) in ("starting", "processing", "suspended"):
            p.cancelled_at = self.now()
        return JSONResponse(self.view(p))

    async def _list(self, request: Request) -> Response:
        key, refused = self._gate(request, "other")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        q = request.query_params
        after, before = _epoch(q.get("created_after")), _epoch(q.get("created_before"))
        mine = [
            p
            for p in sorted(self.predictions.values(), key=lambda p: -p.seq)
            if p.key == key
            and (after is None or p.created_at >= after)
            and (before is None or p.created_at < before)
        ]
        cursor = int(q.get("cursor", "0")) if q.get("cursor", "0").isdigit() else 0
        page = mine[cursor : cursor + PAGE]
        following = None
        if cursor + PAGE < len(mine):
            rest = "&".join(f"{k}={v}" for k, v in q.items() if k != "cursor")
            following = f"{self.public_url}/v1/predictions?cursor={cursor + PAGE}&{rest}"
        return JSONResponse(
            {"previous": None, "next": following, "results": [self.view(p) for p in page]}
        )

    async def _secret(self, request: Request) -> Response:
        key, refused = self._gate(request, "other")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        return JSONResponse({"key": self.secret(key)})

    async def _account(self, request: Request) -> Response:
        key, refused = self._gate(request, "other")
        if refused is not None or key is None:
            return refused or problem(401, "Unauthenticated", "no token")
        return JSONResponse({"type": "user", "username": "sim", "name": "Simulated"})

    async def _file(self, request: Request) -> Response:
        p = self.predictions.get(request.path_params["id"])
        if p is None or self.view(p)["output"] is None:
            return problem(404, "Not found", "The file does not exist or was removed.")
        return await self.media.response(request.path_params["name"])

    # -- webhooks -----------------------------------------------------------------------------
    def due_webhooks(self) -> list[Delivery]:
        due = []
        for p in list(self.predictions.values()):
            if not p.webhook:
                continue
            status = self.status(p)
            event = (
                "completed"
                if status in ("succeeded", "failed", "canceled", "aborted")
                else ("start" if status != "starting" else "")
            )
            for name in ("start", "completed") if event == "completed" else (event,):
                if not name or name not in p.events or (p.id, name) in self._sent:
                    continue
                self._sent.add((p.id, name))
                headers = {
                    "Content-Type": "application/json",
                    "webhook-id": f"msg_{secrets.token_hex(12)}",
                }
                body = json.dumps(self.view(p)).encode()
                due.append(Delivery(p.id, p.webhook, body, headers, final=name == "completed"))
        return due


def _build(options: SimulatorOptions) -> UpstreamSimulator:
    sim = ReplicateSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ENTRY = SimulatorEntry("replicate", _build, "add a replicate channel with this base_url")
