"""What the Replicate simulator checks of a prediction's ``input``, per model (each version's
``openapi_schema`` in the real API; ``shared/spec/providers/replicate.md`` §4), its versions,
and its error bodies (RFC 7807 problem details).

These are the simulator's own reading of the spec, apart from the adapter's tables, so a
mapping mistake in the adapter shows as a 422 here.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21")
_VEO = {
    "aspect_ratio": ("16:9", "9:16"),
    "image": str,
    "negative_prompt": str,
    "resolution": ("720p", "1080p"),
    "seed": int,
}
# Model → its input fields (a tuple: the allowed values; a type: any value of it). ``prompt``
# is required everywhere.
SCHEMAS: dict[str, dict[str, Any]] = {
    "bytedance/seedance-1-pro": {
        "duration": tuple(range(2, 13)),
        "resolution": ("480p", "720p", "1080p"),
        "aspect_ratio": _RATIOS,
        "fps": (24,),
        "camera_fixed": bool,
        "seed": int,
        "image": str,
    },
    "kwaivgi/kling-v2.1-master": {
        "negative_prompt": str,
        "start_image": str,
        "aspect_ratio": ("16:9", "9:16", "1:1"),
        "duration": (5, 10),
    },
    "google/veo-3": _VEO,
    "google/veo-3-fast": _VEO,
    "minimax/hailuo-02": {
        "duration": (6, 10),
        "resolution": ("512p", "768p", "1080p"),
        "prompt_optimizer": bool,
        "first_frame_image": str,
    },
}


def version_of(model: str) -> str:
    """The latest version id of a model (stable: derived from its name)."""
    return hashlib.sha256(model.encode()).hexdigest()


VERSIONS = {version_of(m): m for m in SCHEMAS}


def check_input(model: str, given: Any) -> str | None:
    """Why ``given`` is not a valid input of ``model`` (None: it is)."""
    if not isinstance(given, dict):
        return "input: must be an object"
    prompt = given.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return "input.prompt: is required"
    schema = SCHEMAS[model]
    for name, value in given.items():
        if name == "prompt":
            continue
        rule = schema.get(name)
        if rule is None:
            return f"input.{name}: Additional property {name} is not allowed"
        if isinstance(rule, tuple) and (value not in rule or isinstance(value, bool)):
            return f"input.{name}: must be one of {', '.join(str(v) for v in rule)}"
        if isinstance(rule, type) and type(value) is not rule:
            return f"input.{name}: Invalid type. Expected: {rule.__name__}"
    hailuo_1080 = model == "minimax/hailuo-02" and given.get("resolution") == "1080p"
    if hailuo_1080 and given.get("duration", 6) != 6:
        return "input.duration: 1080p videos are 6 seconds"
    return None


def problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"type": f"https://replicate.com/docs/errors#{status}", "title": title,
         "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers or None,
    )  # fmt: skip


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def duration(value: str | None) -> float | None:
    """A ``Cancel-After`` such as ``30s``, ``5m`` or ``1h30m``, in seconds."""
    match = DURATION.match((value or "").strip())
    if not value or match is None or not any(match.groups()):
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


__all__ = [
    "SCHEMAS",
    "VERSIONS",
    "check_input",
    "duration",
    "epoch",
    "iso",
    "problem",
    "version_of",
]
