"""Everything the SDK raises, as one tree; API errors carry the server's stable ``code``.

ReelgateClientError              code, message (the SDK's root; not the server's ReelgateError)
├── APIError                     status, code, message, param: the server said no
│   ├── BadRequestError          400 (invalid_parameter, model_not_found, …)
│   ├── AuthenticationError      401 (missing_token, invalid_token)
│   ├── PermissionDeniedError    403 (link_expired, …)
│   ├── NotFoundError            404 (task_not_found, not_found, …)
│   ├── ConflictError            409 (not_cancellable, idempotency_key_reused)
│   ├── RateLimitError           429
│   └── ServerError              5xx
├── APIResponseValidationError   the server answered something the SDK cannot read
├── APIConnectionError           no answer (after retries)
│   └── APITimeoutError          the request timed out (after retries)
├── WaitTimeoutError             ``wait()`` ran out of time; ``.task`` is the last state seen
└── NoContentError               ``download()`` of a task that has no such file
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reelgate.client.models import Task


class ReelgateClientError(Exception):
    """Root of every error the SDK raises; ``code`` is machine-readable, ``message`` human."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class APIError(ReelgateClientError):
    """The server answered with an error: its HTTP status and ``{"code","message","param"}``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.param = param

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, code={self.code!r}, message={self.message!r})"


class BadRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class RateLimitError(APIError):
    pass


class ServerError(APIError):
    pass


class APIResponseValidationError(ReelgateClientError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_response")


class APIConnectionError(ReelgateClientError):
    def __init__(self, message: str, *, code: str = "connection_error") -> None:
        super().__init__(message, code=code)


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


class WaitTimeoutError(ReelgateClientError):
    def __init__(self, task: Task, seconds: float) -> None:
        super().__init__(
            f"task {task.task_id} is still {task.status} after {seconds:g} s", code="wait_timeout"
        )
        self.task = task


class NoContentError(ReelgateClientError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="no_content")


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def api_error(status: int, code: str, message: str, param: str | None = None) -> APIError:
    """The exception for an error answer: a subclass per status, ``APIError`` for the rest."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(status, code, message, param)
