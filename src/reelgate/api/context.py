"""Every HTTP request, observed once: its request id and its metrics, in one cheap wrapper.

- **Request id**: the caller's ``X-Request-Id`` when it is a sane token, else a new one; bound to
  the request's log lines and echoed in the response. A task keeps the id of the request that
  created it (``logs.current_request_id``).
- **Metrics**: requests by route template, method and status, and their latency (to the first
  byte of the answer), in ``reelgate.metrics``.

One wrapper instead of two, a ``ContextVar`` instead of structlog's per-key context, ids from a
per-process prefix and a counter instead of a system random call, and the metric children cached
per label set: this sits on the status GET's hot path.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate import logs
from reelgate.metrics import METRICS, Metrics


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics = METRICS) -> None:
        self.app = app
        self.http = metrics.http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent = value
                break
        request_id = logs.request_id_from_header(sent)
        header = (b"x-request-id", request_id.encode())
        token = logs.REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status = 500
        timed = False

        async def sending(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.http.route(_route_of(scope), scope["method"]).timed(
                    time.perf_counter() - start
                )
                timed = True
                # A copy: a cached response's own header list must not grow.
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            logs.REQUEST_ID.reset(token)
            stats = self.http.route(_route_of(scope), scope["method"])
            if not timed:
                stats.timed(time.perf_counter() - start)
            stats.answered(status)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
