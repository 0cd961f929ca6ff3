"""What the fal simulator checks of a submit body, per endpoint (``shared/spec/providers/fal.md``
§4), and its error bodies: fal's model errors are 422 with a ``detail`` list of
``{loc, msg, type}``; infrastructure errors carry ``detail`` and ``error_type``.

The checks are the simulator's own reading of the spec, apart from the adapter's tables, so a
mapping mistake in the adapter shows as a 422 here.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

NAMESPACES = ("workflows", "comfy")
_RATIOS6 = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
_VEO = {
    "aspect_ratio": ("16:9", "9:16"),
    "duration": ("4s", "6s", "8s"),
    "resolution": ("720p", "1080p"),
    "negative_prompt": str,
    "generate_audio": bool,
    "seed": int,
    "auto_fix": bool,
}
_VEO_I2V = {**_VEO, "aspect_ratio": ("auto", "16:9", "9:16"), "image_url": str}
_KLING = {
    "duration": ("5", "10"),
    "aspect_ratio": ("16:9", "9:16", "1:1"),
    "negative_prompt": str,
    "cfg_scale": float,
}
_KLING_I2V = {k: v for k, v in _KLING.items() if k != "aspect_ratio"} | {"image_url": str}

# Endpoint id → its optional fields (a tuple: the allowed values; a type: any value of it).
# Every endpoint takes ``prompt`` (required); image-to-video ones require ``image_url``.
SCHEMAS: dict[str, dict[str, Any]] = {
    "fal-ai/bytedance/seedance/v1/pro/text-to-video": {
        "aspect_ratio": _RATIOS6,
        "duration": tuple(str(d) for d in range(2, 13)),
        "resolution": ("480p", "720p", "1080p"),
        "camera_fixed": bool,
        "seed": int,
        "enable_safety_checker": bool,
        "num_frames": int,
    },
    "fal-ai/kling-video/v2.1/master/text-to-video": _KLING,
    "fal-ai/kling-video/v2.1/master/image-to-video": _KLING_I2V,
    "fal-ai/veo3": _VEO,
    "fal-ai/veo3/fast": _VEO,
    "fal-ai/veo3/image-to-video": _VEO_I2V,
    "fal-ai/veo3/fast/image-to-video": _VEO_I2V,
    "fal-ai/veo3.1": {**_VEO, "resolution": ("720p", "1080p", "4k"), "safety_tolerance": str},
    "fal-ai/veo3.1/image-to-video": {**_VEO_I2V, "resolution": ("720p", "1080p", "4k")},
    "fal-ai/minimax/hailuo-02/standard/text-to-video": {
        "duration": ("6", "10"),
        "prompt_optimizer": bool,
    },
    "fal-ai/minimax/hailuo-02/pro/text-to-video": {"prompt_optimizer": bool},
    "fal-ai/wan-25-preview/text-to-video": {
        "negative_prompt": str,
        "aspect_ratio": ("16:9", "9:16", "1:1"),
        "duration": ("5", "10"),
        "resolution": ("480p", "720p", "1080p"),
        "audio_url": str,
        "enable_prompt_expansion": bool,
        "enable_safety_checker": bool,
        "seed": int,
    },
}
# Endpoints whose output is a VideoFile (it says how long the video is).
VIDEO_FILE = frozenset({"fal-ai/wan-25-preview/text-to-video"})


def model_error(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": kind}


def check_input(endpoint: str, body: Any) -> list[dict[str, Any]]:
    """The model errors of a submit body (empty: it is valid)."""
    schema = SCHEMAS[endpoint]
    if not isinstance(body, dict):
        return [model_error("__root__", "the body must be a JSON object", "type_error.dict")]
    errors = []
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        errors.append(model_error("prompt", "field required", "value_error.missing"))
    if "image_url" in schema and not isinstance(body.get("image_url"), str):
        errors.append(model_error("image_url", "field required", "value_error.missing"))
    for name, value in body.items():
        if name == "prompt":
            continue
        rule = schema.get(name)
        if rule is None:
            errors.append(model_error(name, "extra fields not permitted", "value_error.extra"))
        elif isinstance(rule, tuple) and value not in rule:
            allowed = ", ".join(repr(v) for v in rule)
            errors.append(model_error(name, f"must be one of {allowed}", "value_error.literal"))
        elif rule is float and not (isinstance(value, int | float) and not isinstance(value, bool)):
            errors.append(model_error(name, "value is not a valid number", "type_error.float"))
        elif isinstance(rule, type) and rule is not float and type(value) is not rule:
            errors.append(model_error(name, f"must be a {rule.__name__}", "type_error"))
    return errors


def detail(status: int, text: str, error_type: str = "") -> JSONResponse:
    body: dict[str, Any] = {"detail": text}
    headers = {}
    if error_type:
        body["error_type"] = error_type
        headers["X-Fal-Error-Type"] = error_type
    return JSONResponse(body, status_code=status, headers=headers)


def app_of(endpoint: str) -> str:
    parts = endpoint.split("/")
    return "/".join(parts[: 3 if parts[0] in NAMESPACES else 2])


def seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def ttl(value: str | None) -> float | None:
    try:
        ttl = json.loads(value or "null")
    except ValueError:
        return None
    seconds = ttl.get("expiration_duration_seconds") if isinstance(ttl, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


__all__ = [
    "SCHEMAS",
    "VIDEO_FILE",
    "app_of",
    "check_input",
    "detail",
    "model_error",
    "seconds",
    "ttl",
]
