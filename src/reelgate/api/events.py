"""Server-sent events for one task: ``GET /v1/video/generations/{task_id}/events``.

Each status change is an ``event: status`` whose ``data`` is the same object the status GET
returns under ``data`` and whose ``id`` is the task version; comment lines keep idle connections
open; the stream ends after the terminal event. A client reconnecting with ``Last-Event-ID`` gets
only what it has not seen. A token revoked meanwhile ends the stream with an ``event: error``
(``invalid_token``) within the token cache's lifetime. All streams and long-polls of one task
share its watcher (``service.watch``): a waiting client costs no read of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from reelgate.api.errors import error_response
from reelgate.api.seed import SeedSurface, bearer, seen_version
from reelgate.core.errors import AuthenticationError, ReelgateError
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Task
from reelgate.service import VideoService

# Token checks on a stream are at least this far apart (a cache lifetime of 0 reads every time).
MIN_TOKEN_CHECK_S = 1.0


class TaskEvents:
    def __init__(self, service: VideoService, seed: SeedSurface, *, keepalive: float) -> None:
        self.service = service
        self.seed = seed
        self.keepalive = keepalive

    async def stream(self, request: Request) -> Response:
        try:
            token = bearer(request)
            owner = await self.service.authenticate(token)
            task = await self.service.get(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        last = seen_version(request.headers.get("last-event-id"))
        return StreamingResponse(
            self._events(token, owner, task, last),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _event(self, task: Task) -> bytes:
        data = json.dumps(self.seed.data(task))
        return f"event: status\nid: {task.version}\ndata: {data}\n\n".encode()

    async def _events(
        self, token: str | None, owner: ApiToken, task: Task, last: int | None
    ) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        if last is None or last < task.version:
            yield self._event(task)
        sent = task
        # The token is checked again this often: a revoked one ends the stream within its
        # cache lifetime plus one such interval, at no cost while the look-up is cached.
        check = min(self.keepalive, max(self.service.token_ttl / 4, MIN_TOKEN_CHECK_S))
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not sent.status.terminal:
            try:
                task = await self.service.wait_status(owner, task.id, sent.version, check)
                owner = await self.service.authenticate(token)
            except AuthenticationError as exc:
                yield _error(exc)
                return
            except ReelgateError:
                return  # the store went away: the client reconnects with Last-Event-ID
            if task.status is sent.status and task.version == sent.version:
                if loop.time() - quiet_since >= self.keepalive - check / 10:
                    quiet_since = loop.time()
                    yield b": keep-alive\n\n"
                continue
            if task.status is not sent.status:
                quiet_since = loop.time()
                yield self._event(task)
            sent = task


def _error(exc: ReelgateError) -> bytes:
    data = json.dumps({"code": exc.code, "message": exc.message})
    return f"event: error\ndata: {data}\n\n".encode()
