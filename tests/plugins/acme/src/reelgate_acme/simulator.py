"""A wire-level simulator of the Acme Video API on reelgate's shared simulator base: only the
API is written here (faults, time, scripted outcomes, counts and ``/_sim`` come from the base).

Jobs wait ``queued_seconds``, work ``running_seconds``, then end as scripted; an expired job
ends when its wait is over. ``reelgate simulate acme`` serves it once this package is installed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing.simulator import Outcome, SampleMedia, UpstreamSimulator
from reelgate.testing.simulators import SimulatorEntry, SimulatorOptions

MODELS = frozenset({"acme-v1", "bytedance/seedance-1.0-pro"})


@dataclass
class Job:
    id: str
    key: str
    body: dict[str, Any]
    created_at: float
    outcome: Outcome
    cancelled: bool = False


@dataclass
class AcmeSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 3.0
    jobs: dict[str, Job] = field(default_factory=dict)
    media: SampleMedia = field(default_factory=lambda: SampleMedia("Acme simulator"))

    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset({"create"}),
        "lookup": frozenset({"list"}),
        "cancel": frozenset({"cancel"}),
    }

    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/jobs", self.endpoint("create", self._create), methods=["POST"]),
            Route("/v1/jobs", self.endpoint("list", self._list), methods=["GET"]),
            Route("/v1/jobs/{id}", self.endpoint("cancel", self._cancel), methods=["DELETE"]),
            Route("/v1/account", self.endpoint("account", self._account), methods=["GET"]),
            Route("/files/{name}", self._file, methods=["GET"]),
        ]

    def injected_error(self, status: int) -> Response:
        kind = "busy" if status == 429 else "internal"
        return JSONResponse(
            {"error": {"type": kind, "message": "injected"}},
            status_code=status,
            headers={"Retry-After": "30"} if status == 429 else None,
        )

    def reset(self) -> None:
        super().reset()
        self.jobs.clear()

    # -- the API ------------------------------------------------------------------------------
    def _key(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key if scheme == "Key" and self.accepts(key) else None

    def _denied(self) -> Response:
        return JSONResponse({"error": {"type": "unauthorized"}}, status_code=401)

    async def _create(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return self._denied()
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("model") not in MODELS or not body.get("prompt"):
            return JSONResponse({"error": {"type": "invalid"}}, status_code=400)
        outcome = self.next_outcome()
        if outcome is Outcome.MODERATION:
            return JSONResponse({"error": {"type": "blocked"}}, status_code=422)
        job = Job(f"job_{secrets.token_hex(8)}", key, body, self.now(), outcome)
        self.jobs[job.id] = job
        self.record_create()
        return JSONResponse({"id": job.id, "state": "waiting"}, status_code=201)

    async def _list(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return self._denied()
        ids = [i for i in request.query_params.get("ids", "").split(",") if i][:50]
        reference = request.query_params.get("reference")
        mine = [j for j in self.jobs.values() if j.key == key]
        if reference is not None:
            picked = [j for j in mine if j.body.get("reference") == reference]
        else:
            picked = [j for j in mine if j.id in ids]
        return JSONResponse({"jobs": [self._view(j) for j in picked]})

    async def _cancel(self, request: Request) -> Response:
        key = self._key(request)
        if key is None:
            return self._denied()
        job = self.jobs.get(request.path_params["id"])
        if job is None or job.key != key:
            return JSONResponse({"error": {"type": "not_found"}}, status_code=404)
        if self._state(job) != "waiting":
            return JSONResponse({"error": {"type": "conflict"}}, status_code=409)
        job.cancelled = True
        return JSONResponse(self._view(job))

    async def _account(self, request: Request) -> Response:
        if self._key(request) is None:
            return self._denied()
        return JSONResponse({"credits": 1000})

    async def _file(self, request: Request) -> Response:
        return await self.media.response(request.path_params["name"])

    # -- state --------------------------------------------------------------------------------
    def _state(self, job: Job) -> str:
        age = self.now() - job.created_at
        if job.cancelled:
            return "cancelled"
        if age < self.queued_seconds:
            return "waiting"
        if job.outcome is Outcome.EXPIRY:
            return "expired"
        if age < self.queued_seconds + self.running_seconds:
            return "paused" if job.outcome is Outcome.UNKNOWN_STATUS else "working"
        return "failed" if job.outcome is Outcome.FAILURE else "done"

    def _view(self, job: Job) -> dict[str, Any]:
        state = self._state(job)
        view: dict[str, Any] = {"id": job.id, "state": state, "reference": job.body["reference"]}
        if state == "done":
            view["video"] = {"url": f"{self.public_url}/files/{job.id}.mp4"}
        if state == "failed":
            view["error"] = {"message": "the job failed"}
        return view


def _build(options: SimulatorOptions) -> UpstreamSimulator:
    sim = AcmeSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ENTRY = SimulatorEntry("acme", _build, "add an acme channel with this base_url")
