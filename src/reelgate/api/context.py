"""Request ids: every HTTP request gets one (the caller's ``X-Request-Id`` when sane), bound to
its log lines and echoed in the response; a task keeps the id of the request that created it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate import logs


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent = value.decode("latin-1")
                break
        request_id = logs.request_id_from(sent)
        header = (b"x-request-id", request_id.encode())

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        with logs.bound(request_id=request_id):
            await self.app(scope, receive, sending)
