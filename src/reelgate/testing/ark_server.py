"""The Ark simulator over HTTP: Ark's routes and error bodies, ``GET /_sim/tasks``, and the video
files (the shared base in ``reelgate.testing.simulator`` adds faults, counts and the other
``/_sim`` routes, and serves it)."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing.ark_errors import ArkError
from reelgate.testing.simulator import SampleMedia, SimulatorHandle, serve_in_thread

if TYPE_CHECKING:
    from reelgate.testing.ark_simulator import ArkSimulator

__all__ = ["BASE", "SimulatorHandle", "ark_routes", "error_response", "serve_in_thread"]

BASE = "/api/v3/contents/generations/tasks"


def ark_routes(sim: ArkSimulator) -> list[BaseRoute]:
    api = _Api(sim)
    return [
        Route(BASE, sim.endpoint("create", api.create), methods=["POST"]),
        Route(BASE, sim.endpoint("list", api.list), methods=["GET"]),
        Route(BASE + "/{task_id}", sim.endpoint("get", api.get), methods=["GET"]),
        Route(BASE + "/{task_id}", sim.endpoint("delete", api.delete), methods=["DELETE"]),
        Route("/_sim/tasks", api.tasks, methods=["GET"]),
        Route("/tos/{name}", api.file, methods=["GET", "HEAD"]),
    ]


def error_response(exc: ArkError, request_id: str | None = None) -> Response:
    """Ark's error body, with the request id in the message and in ``X-Request-Id``."""
    request_id = request_id or secrets.token_hex(10)
    return JSONResponse(
        {
            "error": {
                "code": exc.code,
                "message": f"{exc.message} Request id: {request_id}",
                "param": exc.param,
                "type": "BadRequest",
            }
        },
        status_code=exc.status,
        headers={"Retry-After": "1", "X-Request-Id": request_id}
        if exc.status == 429
        else {"X-Request-Id": request_id},
    )


class _Api:
    def __init__(self, sim: ArkSimulator) -> None:
        self.sim = sim
        self._media = SampleMedia("Ark simulator")

    async def _answer(self, request: Request, endpoint: str) -> Response:
        request_id = secrets.token_hex(10)
        try:
            response = await self._route(request, endpoint)
        except ArkError as exc:
            return error_response(exc, request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    async def create(self, request: Request) -> Response:
        return await self._answer(request, "create")

    async def list(self, request: Request) -> Response:
        return await self._answer(request, "list")

    async def get(self, request: Request) -> Response:
        return await self._answer(request, "get")

    async def delete(self, request: Request) -> Response:
        return await self._answer(request, "delete")

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
        try:
            page_size, page_num = int(q.get("page_size", "10")), int(q.get("page_num", "1"))
        except ValueError:
            raise ArkError(400, "InvalidParameter", "page_num and page_size are 1..500.") from None
        return JSONResponse(
            sim.list_tasks(
                key,
                ids=set(q.getlist("filter.task_ids")),
                model=q.get("filter.model"),
                status=q.get("filter.status") or None,
                service_tier=q.get("filter.service_tier") or None,
                page_size=page_size,
                page_num=page_num,
            )
        )

    async def tasks(self, _request: Request) -> Response:
        return JSONResponse({"items": self.sim.task_rows()})

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        expires = request.query_params.get("X-Tos-Expires", "0")
        if not expires.isdigit() or int(expires) < self.sim.now():
            return Response(b"AccessDenied: Request has expired", status_code=403)
        return await self._media.response(name)


def named_tasks(endpoint: str, request: Request) -> set[str]:
    """The task ids a read names: in its path (get) or in ``filter.task_ids`` (list)."""
    if endpoint == "get":
        return {request.path_params["task_id"]}
    if endpoint == "list":
        return set(request.query_params.getlist("filter.task_ids"))
    return set()
