"""The unified create request, parsed from the seed's body (JSON or multipart form fields).

Surfaces hand this module plain values; it returns a ``VideoRequest`` or raises ``InvalidRequest``
naming the offending parameter. Model-specific checks live in ``capabilities``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.core import canonical, canonical_json
from reelgate.core.canonical import invalid, missing
from reelgate.core.errors import InvalidRequest

__all__ = ["VideoRequest", "invalid", "missing", "parse_prompt", "parse_seed_body"]

MAX_PROMPT_CHARS = 4000
MAX_MODEL_CHARS = 128  # the tasks.model column
MAX_IMAGES = 16
# A duration's own range before any model's: -1 (the upstream chooses) to an hour.
DURATION_RANGE = (-1, 3600)

# "x", "X", "*" and the multiplication sign people paste from documents.
_SIZE = re.compile(r"^\s*([0-9]{2,5})\s*[xX\u00d7*]\s*([0-9]{2,5})\s*$")
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


def parse_prompt(value: Any) -> str:
    """A prompt as every route that takes one (create, remix, quote, every surface) accepts it."""
    return canonical.text(value, "prompt", max_chars=MAX_PROMPT_CHARS, multiline=True)


def parse_seed_body(body: Mapping[str, Any]) -> VideoRequest:
    """Parse the body of ``POST /v1/video/generations`` (already decoded from JSON or a form)."""
    unknown = sorted(set(body) - _KNOWN_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown parameter '{unknown[0]}'; provider options go inside 'metadata'",
            code="unsupported_parameter",
            param=unknown[0],
        )
    model = canonical.text(body.get("model"), "model", max_chars=MAX_MODEL_CHARS)
    prompt = parse_prompt(body.get("prompt"))
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
    return canonical.url(value, "callback_url")


def _images(body: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[tuple[str, str]] = []
    for param in ("image", "input_reference"):
        value = body.get(param)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise invalid(param, "must be a URL or a data URI string")
        found.append((param, value))
    many = body.get("images")
    if many is not None:
        if isinstance(many, str):
            many = [many]
        if not isinstance(many, list) or not all(isinstance(i, str) and i for i in many):
            raise invalid("images", "must be a list of URL or data URI strings")
        found.extend((f"images[{i}]", ref) for i, ref in enumerate(many))
    if len(found) > MAX_IMAGES:
        raise invalid("images", f"holds more than {MAX_IMAGES} images")
    return tuple(image_ref(ref, param) for param, ref in found)


def image_ref(ref: str, param: str) -> str:
    """An input image: a data: URI (its bytes are checked where it is decoded) or a URL."""
    if ref.startswith("data:"):
        if not ref.isascii() or canonical.fault(ref, multiline=False):
            raise invalid(param, "must be a data: URI in ASCII (base64)")
        return ref
    if not ref.startswith(("http://", "https://")):
        raise invalid("image", "must be an http(s) URL or a data: URI")
    return canonical.url(ref, param)


def _as_int(param: str, value: Any) -> int:
    low, high = DURATION_RANGE
    return canonical.integer(value, param, low=low, high=high, what="an integer number of seconds")


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
            value = canonical_json.loads(value, "metadata")
        except InvalidRequest as exc:
            if exc.code != "invalid_json":
                raise
            raise invalid("metadata", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid("metadata", "must be a JSON object")
    canonical.tree(value, "metadata")
    return value
