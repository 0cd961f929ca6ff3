"""A token's webhook settings and each task's delivery log.

``GET|PUT|DELETE /v1/webhook`` (the token's endpoint and its ``whsec_`` secret),
``POST /v1/webhook/rotate``, ``GET /v1/video/generations/{id}/deliveries`` and
``POST /v1/video/generations/{id}/deliveries/{delivery_id}/replay``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.seed import bearer
from reelgate.core import canonical
from reelgate.core.errors import InvalidRequest, ReelgateError
from reelgate.core.webhooks import Delivery, Endpoint
from reelgate.service import VideoService

MAX_BODY = 16 * 1024


def endpoint_view(endpoint: Endpoint, now: float) -> dict[str, Any]:
    rotating = endpoint.previous_until is not None and endpoint.previous_until > now
    return {
        "url": endpoint.url,
        "secret": endpoint.secret,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "previous_secret_valid_until": int(endpoint.previous_until or 0) if rotating else None,
    }


def delivery_view(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event": d.event,
        "target": d.target,
        "url": d.url,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": int(d.next_attempt_at) if d.state == "pending" else None,
        "last_status": d.last_status,
        "last_error": d.last_error or None,
        "created_at": int(d.created_at),
        "log": [
            {
                "attempt": a.attempt,
                "at": int(a.at),
                "status": a.status,
                "error": a.error or None,
                "duration_ms": a.duration_ms,
            }
            for a in d.log
        ],
    }


def _ok(data: Any) -> Response:
    return Response(
        json.dumps({"code": "success", "data": data}).encode(), media_type="application/json"
    )


class WebhookSurface:
    def __init__(self, service: VideoService) -> None:
        self.service = service

    async def endpoint(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            if request.method == "GET":
                found = await self.service.webhook(owner)
            elif request.method == "DELETE":
                found = await self.service.set_webhook(owner, None)
            else:
                fields = await read_object(request, MAX_BODY)
                url = fields.get("url")
                unknown = sorted(set(fields) - {"url"})
                if unknown:
                    raise InvalidRequest(
                        f"unknown parameter '{unknown[0]}'",
                        code="unsupported_parameter",
                        param=unknown[0],
                    )
                if not isinstance(url, str) or not url:
                    raise InvalidRequest("'url' is required", code="missing_parameter", param="url")
                found = await self.service.set_webhook(owner, canonical.url(url, "url"))
        except ReelgateError as exc:
            return error_response(exc)
        return _ok(endpoint_view(found, self.service.clock()))

    async def rotate(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            found = await self.service.rotate_webhook_secret(owner)
        except ReelgateError as exc:
            return error_response(exc)
        return _ok(endpoint_view(found, self.service.clock()))

    async def deliveries(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            found = await self.service.deliveries(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        return _ok([delivery_view(d) for d in found])

    async def replay(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            params = request.path_params
            found = await self.service.replay(owner, params["task_id"], params["delivery_id"])
        except ReelgateError as exc:
            return error_response(exc)
        return _ok(delivery_view(found))
