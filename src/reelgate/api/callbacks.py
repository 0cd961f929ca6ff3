"""Where upstreams call back: ``POST /v1/callbacks/{provider}/{task_id}/{token}``.

No bearer token (the upstream has none of ours): the per-task token in the address is the
credential. A wrong token is a 404 like an unknown route, and changes nothing. A right one only
brings the task's next look-up forward; the engine applies what the upstream then confirms, so a
forged body or a replayed callback cannot move a task.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_limited
from reelgate.api.errors import error_response
from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.lifecycle import Callback
from reelgate.engine.callbacks import CallbackUrls
from reelgate.service import VideoService

log = logging.getLogger("reelgate.api.callbacks")

# An Ark callback is one task object; anything much larger is not one.
MAX_CALLBACK_BYTES = 256 * 1024


class CallbackSurface:
    def __init__(self, service: VideoService, urls: CallbackUrls) -> None:
        self.service = service
        self.urls = urls

    async def receive(self, request: Request) -> Response:
        params = request.path_params
        try:
            if not self.urls.verify(params["task_id"], params["token"]):
                raise NotFound("not found", code="not_found")
            body = await read_limited(request, MAX_CALLBACK_BYTES)
            # The address as reelgate handed it out (behind a proxy the request's own URL differs;
            # an upstream that signs the URL signed this one).
            url = self.urls.url(params["provider"], params["task_id"])
            if request.url.query:
                url += "?" + request.url.query
            callback = Callback(body, dict(request.headers.items()), url)
            scheduled, reply = await self.service.callback(
                params["provider"], params["task_id"], callback
            )
        except ReelgateError as exc:
            return error_response(exc)
        log.debug("callback for %s: look-up %s", params["task_id"], scheduled or "not needed")
        if reply is not None:  # the upstream's handshake wants its challenge back
            return Response(reply, media_type="application/json")
        # 200 either way: the upstream has delivered; retrying would change nothing.
        return Response(b'{"received":true}', media_type="application/json")
