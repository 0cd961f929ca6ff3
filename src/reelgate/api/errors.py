"""Error responses: every failure becomes an error body in its surface's shape, with its status.

Three shapes, chosen by the path so that even a route that does not exist answers in the shape
its client reads: reelgate's own ``{"code","message","data":null}``, OpenAI's
``{"error":{"message","type","param","code"}}`` under ``/v1/videos`` and Ark's
``{"error":{"code","message","param","type"}}`` under ``/api/v3``. Unexpected exceptions are
logged with their trace and answered with a bare 500 ``internal_error``; the trace never
reaches the client.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from reelgate.core.canonical import shown
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
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    # OpenAI's own quota error is a 429, which its SDK retries: a 402 is answered at once.
    402: "insufficient_quota",
    403: "permission_error",
}
OPENAI_PREFIX = "/v1/videos"
ARK_PREFIX = "/api/v3/"
# The longest message an error body carries (a message may quote what the client sent).
MAX_MESSAGE_CHARS = 2000


def _headers(exc: ReelgateError) -> dict[str, str]:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reelgate"'
    return headers


def _message(exc: ReelgateError) -> str:
    # Printable and bounded whatever was put in it: a lone surrogate in a message must not
    # make the error itself fail to encode.
    return shown(exc.message, MAX_MESSAGE_CHARS, multiline=True)


def _param(exc: ReelgateError) -> str | None:
    return shown(exc.param) if exc.param else None


def error_response(exc: ReelgateError) -> Response:
    body: dict[str, object] = {"code": exc.code, "message": _message(exc), "data": None}
    if exc.param:
        body["param"] = _param(exc)
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        status_code=exc.http_status,
        media_type="application/json",
        headers=_headers(exc),
    )


def openai_error(exc: ReelgateError) -> Response:
    """OpenAI's error body, with the stable code and the same HTTP status."""
    kind = _OPENAI_TYPES.get(exc.http_status)
    if kind is None:
        kind = "invalid_request_error" if exc.http_status < 500 else "server_error"
    detail = {"message": _message(exc), "type": kind, "param": _param(exc), "code": exc.code}
    return Response(
        json.dumps({"error": detail}).encode(),
        status_code=exc.http_status,
        media_type="application/json",
        headers=_headers(exc),
    )


def ark_error(exc: ReelgateError) -> Response:
    kind = "invalid_request_error" if exc.http_status < 500 else "server_error"
    detail = {"code": exc.code, "message": _message(exc), "param": _param(exc), "type": kind}
    return Response(
        json.dumps({"error": detail}).encode(),
        status_code=exc.http_status,
        media_type="application/json",
        headers=_headers(exc),
    )


def surface_error(path: str, exc: ReelgateError) -> Response:
    """``exc`` in the shape of the surface ``path`` belongs to."""
    if path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/"):
        return openai_error(exc)
    if path.startswith(ARK_PREFIX):
        return ark_error(exc)
    return error_response(exc)


async def on_reelgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReelgateError)
    if exc.http_status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return surface_error(request.url.path, exc)


# Method and path → an error to answer instead of 404/405 (operations a client SDK knows that
# no provider here can do yet), or None.
Unsupported = Callable[[str, str], ReelgateError | None]


def on_http_exception(
    unsupported: Unsupported = lambda _method, _path: None,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The handler of Starlette's 404 (no route) and 405 (a route, another method)."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code in (404, 405):
            known = unsupported(request.method, path)
            if known is not None:
                return surface_error(path, known)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {
            404: f"no route {request.method} {shown(path, 200)}",
            405: f"method {request.method} is not allowed on {shown(path, 200)}",
        }.get(exc.status_code, str(exc.detail))
        err = ReelgateError(message, code=code)
        err.http_status = exc.status_code
        response = surface_error(path, err)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    return handler


class ClientGone(OSError):
    """The client closed its connection while its answer was being sent (a stream it left)."""


def _client_left(exc: BaseException) -> bool:
    # Ours (the RSGI bridge), Starlette's, and uvicorn's own (not imported: it is optional).
    return isinstance(exc, ClientGone | ClientDisconnect) or (
        isinstance(exc, OSError) and type(exc).__name__ == "ClientDisconnected"
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    if _client_left(exc):
        # Nobody is there to answer: not an error of reelgate's (an SSE client went away).
        log.debug("client left before its answer ended")
        return Response(status_code=499)
    log.exception("unhandled error", exc_info=exc)
    return surface_error(request.url.path, ReelgateError("internal error; it has been logged"))
