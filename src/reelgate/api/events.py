"""Server-sent events for one task: ``GET /v1/video/generations/{task_id}/events``.

Each status change is an ``event: status`` whose ``data`` is the same object the status GET
returns under ``data`` and whose ``id`` is the task version; comment lines keep idle connections
open; the stream ends after the terminal event. A client reconnecting with ``Last-Event-ID`` gets
only what it has not seen.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from reelgate.api.errors import error_response
from reelgate.api.seed import SeedSurface, bearer, seen_version
from reelgate.core.errors import ReelgateError
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Task
from reelgate.service import VideoService


class TaskEvents:
    def __init__(self, service: VideoService, seed: SeedSurface, *, keepalive: float) -> None:
        self.service = service
        self.seed = seed
        self.keepalive = keepalive

    async def stream(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            task = await self.service.get(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        last = seen_version(request.headers.get("last-event-id"))
        return StreamingResponse(
            self._events(owner, task, last),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _event(self, task: Task) -> bytes:
        data = json.dumps(self.seed.data(task))
        return f"event: status\nid: {task.version}\ndata: {data}\n\n".encode()

    async def _events(self, owner: ApiToken, task: Task, last: int | None) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        if last is None or last < task.version:
            yield self._event(task)
        sent = task
        while not sent.status.terminal:
            try:
                task = await self.service.wait_status(owner, task.id, sent.version, self.keepalive)
            except ReelgateError:
                return  # the store went away: the client reconnects with Last-Event-ID
            if task.status is sent.status and task.version == sent.version:
                yield b": keep-alive\n\n"
                continue
            if task.status is not sent.status:
                yield self._event(task)
            sent = task
