"""One root exception for everything reelgate raises, with a stable machine code per error.

Every error a client can see carries a snake_case ``code``, a human ``message`` and the HTTP status
a surface should answer with. Adapters translate driver and HTTP errors into this tree at their
boundary, so no foreign exception (and no stack trace) ever reaches a client.

    ReelgateError                      500 internal_error
    ├── ClientError                    400 invalid_request
    │   ├── InvalidRequest             400 invalid_request (and more specific codes)
    │   ├── AuthenticationError        401 invalid_token / missing_token
    │   ├── PaymentRequired            402 insufficient_quota (the token's balance is short)
    │   ├── PermissionDenied           403 forbidden
    │   ├── NotFound                   404 not_found / task_not_found / model_not_found
    │   ├── Conflict                   409 conflict
    │   ├── PayloadTooLarge            413 payload_too_large
    │   ├── UnsupportedMediaType       415 unsupported_media_type
    │   ├── Unprocessable              422 unprocessable
    │   └── RateLimited                429 rate_limited (carries retry_after)
    ├── UpstreamError                  502 upstream_error
    │   └── UpstreamUnavailable        503 upstream_unavailable (carries retry_after)
    ├── IllegalTransition              500 illegal_transition (a bug or a confused upstream)
    └── ConfigError                    500 config_error (raised at start-up only)
"""

from __future__ import annotations


class ReelgateError(Exception):
    """Root of every reelgate error."""

    http_status: int = 500
    default_code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ClientError(ReelgateError):
    """The request cannot be served as sent; the client must change something."""

    http_status = 400
    default_code = "invalid_request"


class InvalidRequest(ClientError):
    http_status = 400
    default_code = "invalid_request"


class AuthenticationError(ClientError):
    http_status = 401
    default_code = "invalid_token"


class PaymentRequired(ClientError):
    """The token's quota balance does not cover the estimated cost of the request."""

    http_status = 402
    default_code = "insufficient_quota"


class PermissionDenied(ClientError):
    http_status = 403
    default_code = "forbidden"


class NotFound(ClientError):
    http_status = 404
    default_code = "not_found"


class Conflict(ClientError):
    http_status = 409
    default_code = "conflict"


class PayloadTooLarge(ClientError):
    http_status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    http_status = 415
    default_code = "unsupported_media_type"


class Unprocessable(ClientError):
    http_status = 422
    default_code = "unprocessable"


class RateLimited(ClientError):
    http_status = 429
    default_code = "rate_limited"


class UpstreamError(ReelgateError):
    """The upstream answered in a way we cannot use; the request itself may be fine."""

    http_status = 502
    default_code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The upstream is unreachable, overloaded or timing out; retrying later may work."""

    http_status = 503
    default_code = "upstream_unavailable"


class IllegalTransition(ReelgateError):
    """A lifecycle move the rules forbid, such as leaving a terminal status."""

    default_code = "illegal_transition"


class ConfigError(ReelgateError):
    """A setting is invalid; start-up stops with a one-line message naming it."""

    default_code = "config_error"
