"""The check every API route passes before its handler runs: its path segments and query
parameters are canonical text (``core.canonical``), bounded in length and number.

Handlers then parse each value for what it means (an id, a limit, a time); none of them sees a
NUL, a control character or a kilobyte-long segment, so none can hand one to the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.errors import surface_error
from reelgate.core.canonical import MAX_KEY_CHARS, fault, shown
from reelgate.core.errors import InvalidRequest, ReelgateError

Handler = Callable[[Request], Awaitable[Response]]

MAX_SEGMENT_CHARS = 256
MAX_QUERY_CHARS = 2048
MAX_QUERY_PARAMS = 600  # Ark's list takes up to 500 filter.task_ids


def _check(value: str, param: str, limit: int) -> None:
    problem = fault(value, multiline=False)
    if problem is not None:
        raise InvalidRequest(
            f"'{shown(param)}' must not contain {problem}", code="invalid_parameter", param=param
        )
    if len(value) > limit:
        raise InvalidRequest(
            f"'{shown(param)}' is longer than {limit} characters",
            code="invalid_parameter",
            param=param,
        )


def check_request(request: Request) -> None:
    """Raise ``InvalidRequest`` naming the first path segment or query parameter at fault."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            _check(value, name, MAX_SEGMENT_CHARS)
    if not request.scope.get("query_string"):
        return
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_PARAMS:
        raise InvalidRequest(
            f"the query string holds more than {MAX_QUERY_PARAMS} parameters",
            code="invalid_parameter",
        )
    for name, value in items:
        _check(name, shown(name), MAX_KEY_CHARS)
        _check(value, name, MAX_QUERY_CHARS)


def checked(handler: Handler) -> Handler:
    """``handler`` behind ``check_request``: a faulty segment or parameter answers a 400 in the
    surface's error shape before the handler runs."""

    async def endpoint(request: Request) -> Response:
        try:
            check_request(request)
        except ReelgateError as exc:
            return surface_error(request.url.path, exc)
        return await handler(request)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint
