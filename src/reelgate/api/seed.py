"""The seed's surface: ``/v1/video/generations`` exactly as new-api documents it.

``GET /v1/video/generations/{task_id}`` is the hot path: a bearer check against the token cache,
a task from the service's cache, and a small JSON body; no framework dependency machinery.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.media import MediaLinks
from reelgate.core.errors import InvalidRequest, ReelgateError
from reelgate.core.lifecycle import Status, Task
from reelgate.core.request import parse_seed_body
from reelgate.service import VideoService


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def task_data(task: Task, links: MediaLinks, epoch: int | None = None) -> dict[str, Any]:
    """The seed's ``data`` object, plus reelgate's extra fields (never renamed or removed)."""
    result_url = links.url(task.result_url, epoch) if task.status is Status.SUCCESS else ""
    fail_reason = result_url if task.status is Status.SUCCESS else task.fail_reason
    return {
        "task_id": task.id,
        "action": "generate",
        "status": task.status.value,
        "progress": task.progress,
        "fail_reason": fail_reason,
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "model": task.model,
        "result_url": result_url,
        "last_frame_url": links.url(task.last_frame_url, epoch) if result_url else "",
        "error": (
            {"code": task.error_code, "message": task.error_message}
            if task.status is Status.FAILURE
            else None
        ),
    }


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (1 to 255 printable ASCII characters), if sent."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not all(" " <= ch <= "~" for ch in value):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            code="invalid_parameter",
            param="Idempotency-Key",
        )
    return value


class SeedSurface:
    def __init__(
        self, service: VideoService, links: MediaLinks, max_body: int, cache_size: int = 100_000
    ) -> None:
        self.service = service
        self.links = links
        self.max_body = max_body
        # Rendered bodies, reused while the task value and the link epoch are unchanged.
        self._bodies: dict[str, tuple[Task, int, bytes]] = {}
        self._cache_size = cache_size

    def render(self, task: Task) -> bytes:
        epoch = self.links.epoch()
        cached = self._bodies.get(task.id)
        if cached is not None and cached[0] is task and cached[1] == epoch:
            return cached[2]
        body = json.dumps({"code": "success", "data": task_data(task, self.links, epoch)}).encode()
        if len(self._bodies) >= self._cache_size:
            self._bodies.pop(next(iter(self._bodies)))
        self._bodies[task.id] = (task, epoch, body)
        return body

    async def get(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            task = await self.service.get(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        return Response(self.render(task), media_type="application/json")

    async def create(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            key = idempotency_key(request)
            fields = await read_object(request, self.max_body)
            task = await self.service.create(owner, parse_seed_body(fields), idempotency_key=key)
        except ReelgateError as exc:
            return error_response(exc)
        body = {
            "id": task.id,
            "task_id": task.id,
            "object": "video",
            "model": task.model,
            "status": task.status.value,
            "progress": 0,
            "created_at": task.submit_time,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def models(self, request: Request) -> Response:
        try:
            await self.service.authenticate(bearer(request))
        except ReelgateError as exc:
            return error_response(exc)
        data = [caps.describe() for caps in self.service.registry.models()]
        return Response(
            json.dumps({"object": "list", "data": data}).encode(), media_type="application/json"
        )
