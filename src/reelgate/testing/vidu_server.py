"""The Vidu simulator over HTTP: Vidu's routes under ``/ent/v2``, its error body
``{code, reason, message, metadata.trace_id}``, and the result files (valid 24 h). The shared
base adds faults, counts and the ``/_sim`` routes."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing.simulator import SampleMedia
from reelgate.testing.vidu_rules import ENDPOINT_MODES, ViduError

if TYPE_CHECKING:
    from reelgate.testing.vidu_simulator import ViduSimulator

__all__ = ["error_response", "vidu_routes"]

BASE = "/ent/v2"


def error_response(exc: ViduError) -> Response:
    return JSONResponse(
        {
            "code": exc.status,
            "reason": exc.reason,
            "message": exc.message,
            "metadata": {"trace_id": secrets.token_hex(16)},
        },
        status_code=exc.status,
    )


def vidu_routes(sim: ViduSimulator) -> list[BaseRoute]:
    api = _Api(sim)
    routes: list[BaseRoute] = [
        Route(f"{BASE}/{endpoint}", sim.endpoint(endpoint, api.creator(endpoint)), methods=["POST"])
        for endpoint in ENDPOINT_MODES
    ]
    return [
        *routes,
        Route(f"{BASE}/tasks", sim.endpoint("list", api.list), methods=["GET"]),
        Route(f"{BASE}/tasks/{{id}}/creations", sim.endpoint("get", api.get), methods=["GET"]),
        Route(f"{BASE}/tasks/{{id}}/cancel", sim.endpoint("cancel", api.cancel), methods=["POST"]),
        Route(f"{BASE}/credits", sim.endpoint("credits", api.credits), methods=["GET"]),
        Route("/_sim/tasks", api.task_rows, methods=["GET"]),
        Route("/files/{name}", api.file, methods=["GET", "HEAD"]),
    ]


class _Api:
    def __init__(self, sim: ViduSimulator) -> None:
        self.sim = sim
        self._media = SampleMedia("Vidu simulator")

    def _key(self, request: Request) -> str:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Token" or not self.sim.accepts(key):
            raise ViduError(401, "Unauthorized", "unauthorized")
        return key

    def creator(self, endpoint: str) -> Any:
        async def create(request: Request) -> Response:
            try:
                key = self._key(request)
                try:
                    body = json.loads(await request.body())
                except ValueError:
                    raise ViduError(400, "BadRequest", "bad request") from None
                task = self.sim.create(key, endpoint, body)
            except ViduError as exc:
                return error_response(exc)
            return JSONResponse(self.sim.created_view(task))

        return create

    async def get(self, request: Request) -> Response:
        try:
            key = self._key(request)
            task = self.sim.find(key, request.path_params["id"])
        except ViduError as exc:
            return error_response(exc)
        self.sim.lookups_by_task[task.id] += 1
        return JSONResponse(self.sim.view(task))

    async def list(self, request: Request) -> Response:
        try:
            key = self._key(request)
            params = request.query_params
            query: dict[str, Any] = {
                "task_ids": params.getlist("task_ids"),
                "states": params.getlist("states"),
                "page": _int(params.get("pager.page", "0")),
                "pagesz": _int(params.get("pager.pagesz", "10")),
            }
            token = params.get("pager.page_token", "")
            if token:
                query["page"] = _int(token.removeprefix("p"))
            for name in ("from", "to"):
                raw = params.get(f"created_at.{name}")
                if raw:
                    query[name] = _time(raw)
            answer = self.sim.list_tasks(key, query)
        except ViduError as exc:
            return error_response(exc)
        return JSONResponse(answer)

    async def cancel(self, request: Request) -> Response:
        try:
            key = self._key(request)
            self.sim.cancel(key, request.path_params["id"])
        except ViduError as exc:
            return error_response(exc)
        return JSONResponse({})

    async def credits(self, request: Request) -> Response:
        try:
            key = self._key(request)
        except ViduError as exc:
            return error_response(exc)
        return JSONResponse(self.sim.account(key))

    async def task_rows(self, _request: Request) -> Response:
        """Every task's timeline, for benchmarks."""
        rows = [
            {
                "id": t.id,
                "state": self.sim.state(t),
                "created_at": t.created_at,
                "finished_at": self.sim.finished_at(t.id),
                "payload": t.body.get("payload"),
            }
            for t in list(self.sim.tasks.values())
        ]
        return JSONResponse(rows)

    async def file(self, request: Request) -> Response:
        expires = request.query_params.get("expires", "")
        if not expires.isdigit() or int(expires) < self.sim.now():
            return Response(b"AccessDenied: the link has expired", status_code=403)
        return await self._media.response(request.path_params["name"])


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ViduError(400, "FieldInvalid", "invalid field: pager") from None


def _time(raw: str) -> float:
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ViduError(400, "FieldInvalid", "invalid field: created_at") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
