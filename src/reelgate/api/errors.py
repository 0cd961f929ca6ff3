"""Error responses: every failure becomes ``{"code","message","data":null}`` with its status.

Unexpected exceptions are logged with their trace and answered with a bare 500 ``internal_error``;
the trace never reaches the client.
"""

from __future__ import annotations

import json
import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from reelgate.core.errors import ReelgateError

log = logging.getLogger("reelgate.api")

_HTTP_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


def error_response(exc: ReelgateError) -> Response:
    body: dict[str, object] = {"code": exc.code, "message": exc.message, "data": None}
    if exc.param:
        body["param"] = exc.param
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reelgate"'
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=exc.http_status,
        media_type="application/json",
        headers=headers,
    )


async def on_reelgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReelgateError)
    if exc.http_status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = {
        404: f"no route {request.method} {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    err = ReelgateError(message, code=code)
    err.http_status = exc.status_code
    response = error_response(err)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ReelgateError("internal error; it has been logged"))
