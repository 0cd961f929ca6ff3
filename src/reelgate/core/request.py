"""The unified create request, parsed from the seed's body (JSON or multipart form fields).

Surfaces hand this module plain values; it returns a ``VideoRequest`` or raises ``InvalidRequest``
naming the offending parameter. Model-specific checks live in ``capabilities``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reelgate.core.errors import InvalidRequest

MAX_PROMPT_CHARS = 4000
MAX_IMAGES = 16

# "x", "X", "*" and the multiplication sign people paste from documents.
_SIZE = re.compile(r"^\s*(\d{2,5})\s*[xX\u00d7*]\s*(\d{2,5})\s*$")
# Control characters other than tab and newlines: no prompt needs them, and NUL breaks storage.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_URL_CHARS = 2048
_KNOWN_FIELDS = frozenset(
    {
        "callback_url",
        "model",
        "prompt",
        "image",
        "images",
        "input_reference",
        "duration",
        "seconds",
        "size",
        "metadata",
    }
)


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """What a client asked for, before the model's capabilities are applied."""

    model: str
    prompt: str
    images: tuple[str, ...] = ()
    duration: int | None = None
    size: tuple[int, int] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Where reelgate posts this task's end (a signed webhook), besides the token's endpoint.
    callback_url: str | None = None


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is required", code="missing_parameter", param=param)


def invalid(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {why}", code="invalid_parameter", param=param)


def parse_seed_body(body: Mapping[str, Any]) -> VideoRequest:
    """Parse the body of ``POST /v1/video/generations`` (already decoded from JSON or a form)."""
    unknown = sorted(set(body) - _KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown parameter '{unknown[0]}'; provider options go inside 'metadata'",
            code="unsupported_parameter",
            param=unknown[0],
        )
    model = _text(body, "model")
    prompt = _text(body, "prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid("prompt", f"is longer than {MAX_PROMPT_CHARS} characters")
    if _CONTROL.search(prompt):
        raise invalid("prompt", "must not contain control characters")
    return VideoRequest(
        model=model,
        prompt=prompt,
        images=_images(body),
        duration=_duration(body),
        size=_size(body.get("size")),
        metadata=_metadata(body.get("metadata")),
        callback_url=_callback_url(body.get("callback_url")),
    )


def _callback_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS:
        raise invalid("callback_url", f"must be a URL of at most {MAX_URL_CHARS} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("callback_url", "must be an http(s) URL")
    return value


def _text(body: Mapping[str, Any], param: str) -> str:
    value = body.get(param)
    if value is None:
        raise missing(param)
    if not isinstance(value, str):
        raise invalid(param, "must be a string")
    if not value.strip():
        raise invalid(param, "must not be blank")
    return value.strip()


def _images(body: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for param in ("image", "input_reference"):
        value = body.get(param)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise invalid(param, "must be a URL or a data URI string")
        found.append(value)
    many = body.get("images")
    if many is not None:
        if isinstance(many, str):
            many = [many]
        if not isinstance(many, list) or not all(isinstance(i, str) and i for i in many):
            raise invalid("images", "must be a list of URL or data URI strings")
        found.extend(many)
    if len(found) > MAX_IMAGES:
        raise invalid("images", f"holds more than {MAX_IMAGES} images")
    for ref in found:
        if not ref.startswith(("http://", "https://", "data:")):
            raise invalid("image", "must be an http(s) URL or a data: URI")
    return tuple(found)


def _as_int(param: str, value: Any) -> int:
    if isinstance(value, bool):
        raise invalid(param, "must be an integer number of seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        return int(value.strip())
    raise invalid(param, "must be an integer number of seconds")


def _duration(body: Mapping[str, Any]) -> int | None:
    duration = body.get("duration")
    seconds = body.get("seconds")
    parsed = None if duration in (None, "") else _as_int("duration", duration)
    from_seconds = None if seconds in (None, "") else _as_int("seconds", seconds)
    if parsed is not None and from_seconds is not None and parsed != from_seconds:
        raise invalid("seconds", f"({from_seconds}) disagrees with 'duration' ({parsed})")
    return parsed if parsed is not None else from_seconds


def _size(value: Any) -> tuple[int, int] | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not (match := _SIZE.match(value)):
        raise invalid("size", "must look like WIDTHxHEIGHT, e.g. 1280x720")
    return int(match.group(1)), int(match.group(2))


def _metadata(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid("metadata", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid("metadata", "must be a JSON object")
    return value
