"""Shared pieces of the OpenAPI document: references, parameters, example values, and error
responses whose examples are rendered by each surface's own error function (so an example has
exactly the shape and status a client gets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

from reelgate.api.errors import ark_error, error_response, openai_error
from reelgate.core import errors

REF = "#/components/schemas/{model}"
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ADMIN: list[dict[str, list[str]]] = [{"adminBearer": []}]

# One gateway, one moment and one task, reused by the examples across the document.
BASE = "https://reelgate.example.com"
TASK_ID = "task_3q5mY0a1bC2dE3fG4hI5jK6lM7nO8pQ9"
OTHER_TASK_ID = "task_Vb7Kx2mN9pQ4rS6tU8wY0zA1cE3gI5kM"
T0 = 1763937600
SIG = "expires=1764028800&sig=53uofSFqHnc7JIWO8M2L-fHHQ38cPH2HdYtXZQfSeJw"
VIDEO_URL = f"{BASE}/v1/media/mirror/{TASK_ID}.video.mp4?{SIG}"
FRAME_URL = f"{BASE}/v1/media/mirror/{TASK_ID}.last_frame.png?{SIG}"
ARK_MODEL = "doubao-seedance-1-0-pro-250528"


class ErrorBody(BaseModel):
    """Every error of reelgate's own routes."""

    code: str = Field(description="Stable machine code (see README, Errors).")
    message: str = Field(description="Human explanation; never a stack trace.")
    data: None
    param: str | None = Field(
        None, description="The parameter at fault; absent when no single one is."
    )


class OpenAiErrorDetail(BaseModel):
    message: str
    type: str = Field(
        description="invalid_request_error, authentication_error, insufficient_quota, "
        "permission_error or server_error"
    )
    param: str | None
    code: str = Field(description="The same stable code as on reelgate's own routes.")


class OpenAiErrorBody(BaseModel):
    """Errors of /v1/videos, as the openai SDK reads them."""

    error: OpenAiErrorDetail


class ArkErrorDetail(BaseModel):
    code: str = Field(description="The same stable code as on reelgate's own routes.")
    message: str
    param: str | None
    type: str = Field(description="invalid_request_error, or server_error for a 5xx")


class ArkErrorBody(BaseModel):
    """Errors of the Ark-native surface, as the volcengine SDK reads them."""

    error: ArkErrorDetail


MODELS: tuple[type[BaseModel], ...] = (ErrorBody, OpenAiErrorBody, ArkErrorBody)

_CLASSES: dict[int, type[errors.ReelgateError]] = {
    400: errors.InvalidRequest,
    401: errors.AuthenticationError,
    402: errors.PaymentRequired,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.RateLimited,
    503: errors.UpstreamUnavailable,
}
_DESCRIPTIONS = {
    400: "The request is invalid (`param` names the field at fault)",
    401: "No token, or an unknown or revoked one",
    402: "The token's quota balance does not cover the estimated charge",
    403: "The token may not do this",
    404: "Not found (another token's task answers the same as an unknown one)",
    409: "Conflicts with the current state",
    413: "The body is larger than REELGATE_MAX_BODY_BYTES",
    415: "The body is neither JSON nor a form",
    429: "Over the token's rate or concurrency limit (see `Retry-After`)",
    503: "Temporarily unavailable (see `Retry-After`)",
}

# name -> (HTTP status, code, message, param): the errors operations list by name.
ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "missing_token": (
        401,
        "missing_token",
        "missing API token: send 'Authorization: Bearer <token>'",
        None,
    ),
    "invalid_token": (401, "invalid_token", "invalid or revoked API token", None),
    "invalid_admin_token": (401, "invalid_token", "invalid admin token", None),
    "task_not_found": (404, "task_not_found", f"no task '{OTHER_TASK_ID}' for this token", None),
    # A path segment that is not canonical text (edge check, before any look-up).
    "invalid_segment": (
        400,
        "invalid_parameter",
        "'task_id' must not contain a control character (U+0000)",
        "task_id",
    ),
    "missing_prompt": (400, "missing_parameter", "'prompt' is required", "prompt"),
    "unknown_field": (
        400,
        "unsupported_parameter",
        "unknown parameter 'colour'; provider options go inside 'metadata'",
        "colour",
    ),
    "model_not_found": (
        400,
        "model_not_found",
        "unknown model 'sora-9' (available: sandbox-i2v, sandbox-t2v)",
        "model",
    ),
    "invalid_option": (
        400,
        "invalid_parameter",
        "'metadata.fps' must be at most 30",
        "metadata.fps",
    ),
    "url_not_allowed": (
        400,
        "url_not_allowed",
        "URLs pointing at private, loopback or link-local addresses are refused (10.0.0.7)",
        "url",
    ),
    "invalid_json": (
        400,
        "invalid_json",
        "request body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        None,
    ),
    "json_beyond_bounds": (
        400,
        "invalid_json",
        "request body is not valid JSON: it nests deeper than 32 levels",
        None,
    ),
    "not_canonical": (
        400,
        "invalid_parameter",
        "'prompt' must not contain a lone surrogate (U+DFFF)",
        "prompt",
    ),
    "not_finite": (
        400,
        "invalid_parameter",
        "'metadata.seed' must be a finite number (not NaN or Infinity)",
        "metadata.seed",
    ),
    "invalid_idempotency_key": (
        400,
        "invalid_parameter",
        "Idempotency-Key must be 1 to 255 printable ASCII characters",
        "Idempotency-Key",
    ),
    "invalid_limit": (
        400,
        "invalid_parameter",
        "limit must be an integer from 1 to 100",
        "limit",
    ),
    "insufficient_quota": (
        402,
        "insufficient_quota",
        "this request is estimated to cost 1633500; the token's balance is 1000 "
        "(ask the operator for more quota)",
        None,
    ),
    "model_not_allowed": (
        403,
        "model_not_allowed",
        f"this token may not use model '{ARK_MODEL}'",
        "model",
    ),
    "idempotency_key_reused": (
        409,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request body",
        None,
    ),
    "not_cancellable": (
        409,
        "not_cancellable",
        "the task is in_progress; only a queued task can be cancelled "
        "(the upstream cannot stop a running one)",
        None,
    ),
    "content_not_ready": (409, "content_not_ready", "the task is queued: it has no content", None),
    "payload_too_large": (
        413,
        "payload_too_large",
        "request body is larger than 33554432 bytes",
        None,
    ),
    "unsupported_media_type": (
        415,
        "unsupported_media_type",
        "unsupported content type 'text/plain'; send application/json or multipart/form-data",
        None,
    ),
    "rate_limited": (
        429,
        "rate_limited",
        "this token may create 60 tasks a minute; try again shortly",
        None,
    ),
    "too_many_tasks": (
        429,
        "too_many_tasks",
        "this token already has 4 unfinished tasks, its limit; try again when one ends",
        None,
    ),
    "no_channel_available": (
        503,
        "no_channel_available",
        f"every channel that serves model '{ARK_MODEL}' is disabled; try again later",
        None,
    ),
    # A cancel that must reach the upstream (the task waits in the upstream's queue) and cannot.
    "upstream_unavailable": (503, "upstream_unavailable", "Ark unreachable (ConnectError)", None),
}
# What every create (on any surface) may answer besides its own errors.
CREATE_ERRORS = (
    "missing_prompt",
    "unknown_field",
    "model_not_found",
    "invalid_option",
    "not_canonical",
    "not_finite",
    "invalid_json",
    "json_beyond_bounds",
    "missing_token",
    "invalid_token",
    "insufficient_quota",
    "model_not_allowed",
    "idempotency_key_reused",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "too_many_tasks",
    "no_channel_available",
)
AUTH_ERRORS = ("missing_token", "invalid_token")
# What every route naming a task in its path may answer about it.
TASK_ERRORS = ("invalid_segment", "task_not_found")
# What every create, quote and remix refuses before it looks at a field's meaning.
CANONICAL_INPUT = (
    "Every value is canonical input or a 400: text without NUL, other control characters "
    "(tab and newline aside, in a prompt) or lone surrogates; the prompt at most 4000 "
    "characters; integers in at most 19 digits that fit 64 bits; finite numbers (no NaN or "
    "Infinity); URLs that parse, with a host of at most 253 characters, labels of at most 63 "
    "and a port from 1 to 65535. A JSON body nests at most 32 levels, holds at most 10,000 "
    "values and no number longer than 100 characters."
)
IDEMPOTENCY_KEY = (
    "1 to 255 printable ASCII characters. The same key and body within 24 h answer the same "
    "task, no second one; a key that cannot be honoured is a 400, never ignored."
)


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def content(schema: dict[str, Any], examples: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON media type with named examples (Swagger UI offers them in a list)."""
    return {
        "application/json": {
            "schema": schema,
            "examples": {name: {"value": value} for name, value in examples.items()},
        }
    }


def ok(
    model: type[BaseModel] | dict[str, Any],
    description: str,
    examples: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A JSON success response with its examples (and the headers it carries)."""
    schema = ref(model) if isinstance(model, type) else model
    out: dict[str, Any] = {"description": description, "content": content(schema, examples)}
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


def body(
    model: type[BaseModel], examples: Mapping[str, Any], *, form: bool = False
) -> dict[str, Any]:
    """A required JSON request body (also accepted as multipart/form-data with ``form``)."""
    out: dict[str, Any] = {"required": True, "content": content(ref(model), examples)}
    if form:
        out["content"]["multipart/form-data"] = {"schema": ref(model)}
    return out


def binary(description: str, *media_types: str) -> dict[str, Any]:
    """A response whose body is a file in one of ``media_types``."""
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {t: {"schema": schema} for t in media_types}}


# A Range that starts past the end of the file: no body, as HTTP has it (RFC 9110 §15.5.17).
RANGE_NOT_SATISFIABLE = {
    "description": "Range not satisfiable (no body): `Content-Range: bytes */SIZE` gives the size"
}


def path(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
        "example": example,
    }


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


LIMIT = query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."
)


def header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


# An error by its name in ERRORS, or one only a single operation has, spelled out.
Error = str | tuple[int, str, str, str | None]


def _responses(
    render: Callable[[errors.ReelgateError], Response],
    schema: type[BaseModel],
    names: tuple[Error, ...],
) -> dict[str, Any]:
    by_status: dict[int, dict[str, Any]] = {}
    for name in names:
        status, code, message, param = ERRORS[name] if isinstance(name, str) else name
        rendered = render(_CLASSES[status](message, code=code, param=param))
        found = by_status.setdefault(status, {})
        key = name if isinstance(name, str) else code
        found[key if key not in found else f"{key} ({param})"] = json.loads(bytes(rendered.body))
    return {
        str(status): {"description": _DESCRIPTIONS[status], "content": content(ref(schema), found)}
        for status, found in sorted(by_status.items())
    }


def fail(*names: Error) -> dict[str, Any]:
    """Error responses of reelgate's own routes: ``{"code","message","data":null,"param"?}``."""
    return _responses(error_response, ErrorBody, names)


def openai_fail(*names: Error) -> dict[str, Any]:
    """Error responses of /v1/videos: ``{"error":{"message","type","param","code"}}``."""
    return _responses(openai_error, OpenAiErrorBody, names)


def ark_fail(*names: Error) -> dict[str, Any]:
    """Error responses of the Ark surface: ``{"error":{"code","message","param","type"}}``."""
    return _responses(ark_error, ArkErrorBody, names)
