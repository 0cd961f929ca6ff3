"""The Ark simulator's own reading of the documented models and option rules (not reelgate's).

``check_body(body)`` and ``check_options(model, body)`` raise ``ArkError`` (Ark's status, code and
``param`` naming the field) for a create the real service refuses, per model as the spec says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reelgate.testing.ark_errors import ArkError

# Models as the spec lists them (Volcengine and BytePlus names), with their image roles.
_ALL_ROLES = {"first_frame", "last_frame", "reference_image"}
MODELS: dict[str, set[str]] = {
    "doubao-seaweed-241128": {"first_frame"},
    "doubao-seedance-1-0-lite-t2v-250428": set(),
    "doubao-seedance-1-0-lite-i2v-250428": _ALL_ROLES,
    "doubao-seedance-1-0-pro-250528": {"first_frame", "last_frame"},
    "doubao-seedance-1-0-pro-fast-251015": {"first_frame"},
    "doubao-seedance-1-5-pro-251215": {"first_frame", "last_frame"},
    "doubao-seedance-2-0-260128": _ALL_ROLES,
    "doubao-seedance-2-0-fast-260128": _ALL_ROLES,
    "doubao-seedance-2-5-260628": _ALL_ROLES,
}
for _name in list(MODELS):
    _bp = _name.removeprefix("doubao-")
    MODELS["dreamina-" + _bp if "seedance-2" in _bp else _bp] = MODELS[_name]
_OPTIONS = {
    "resolution",
    "ratio",
    "duration",
    "frames",
    "seed",
    "camera_fixed",
    "watermark",
    "return_last_frame",
    "callback_url",
    "service_tier",
    "execution_expires_after",
    "generate_audio",
    "draft",
    "priority",
    "safety_identifier",
    "tools",
    "output_format",
}


@dataclass(frozen=True)
class Family:
    durations: tuple[int, int]
    auto_duration: bool
    resolutions: tuple[str, ...]
    frames: bool = False
    audio: bool = False
    draft: bool = False
    flex: bool = True
    priority: bool = False
    output_format: bool = False


_V1 = ("480p", "720p", "1080p")
_FAMILIES = {
    "seaweed-241128": Family((5, 10), False, ("480p", "720p")),
    "seedance-1-0-lite-t2v-250428": Family((2, 12), False, _V1, frames=True),
    "seedance-1-0-lite-i2v-250428": Family((2, 12), False, _V1, frames=True),
    "seedance-1-0-pro-250528": Family((2, 12), False, _V1, frames=True),
    "seedance-1-0-pro-fast-251015": Family((2, 12), False, _V1, frames=True),
    "seedance-1-5-pro-251215": Family((4, 12), True, _V1, audio=True, draft=True),
    "seedance-2-0-260128": Family(
        (4, 15), True, (*_V1, "4k"), audio=True, flex=False, priority=True
    ),
    "seedance-2-0-fast-260128": Family(
        (4, 15), True, ("480p", "720p"), audio=True, flex=False, priority=True
    ),
    "seedance-2-5-260628": Family(
        (4, 30),
        True,
        (*_V1, "4k"),
        audio=True,
        draft=True,
        flex=False,
        priority=True,
        output_format=True,
    ),
}
_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
_BOOLS = ("camera_fixed", "watermark", "return_last_frame", "generate_audio", "draft")


def _family(model: str) -> Family:
    return _FAMILIES[model.removeprefix("doubao-").removeprefix("dreamina-")]


def _bad(param: str, why: str) -> ArkError:
    return ArkError(400, "InvalidParameter", f"The parameter `{param}` {why}.", param)


def check_body(body: dict[str, Any]) -> tuple[str, str]:
    """The model and the prompt text of a create body the service accepts."""
    unknown = sorted(set(body) - _OPTIONS - {"model", "content"})
    if unknown:
        raise ArkError(
            400,
            "InvalidParameter.UnsupportedParameter",
            f"The parameter `{unknown[0]}` is not supported.",
            unknown[0],
        )
    model = body.get("model")
    if not model:
        raise ArkError(400, "MissingParameter", "The parameter `model` is missing.", "model")
    if model not in MODELS:
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model {model} does not exist.",
            "model",
        )
    check_options(model, body)
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise ArkError(400, "MissingParameter", "The parameter `content` is missing.", "content")
    text = ""
    for i, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            text += str(item.get("text", ""))
        elif kind == "image_url":
            role = item.get("role", "first_frame")
            if role not in MODELS[model]:
                raise ArkError(
                    400,
                    "InvalidParameter",
                    f"The role {role} is not supported by {model}.",
                    f"content[{i}].role",
                )
        else:
            raise ArkError(400, "InvalidParameter", "Unknown content type.", f"content[{i}].type")
    return str(model), text


def check_options(model: str, body: dict[str, Any]) -> None:
    fam = _family(model)
    for key in _BOOLS:
        if key in body and not isinstance(body[key], bool):
            raise _bad(key, "must be a boolean")
    if "resolution" in body and body["resolution"] not in fam.resolutions:
        raise _bad("resolution", f"must be one of {', '.join(fam.resolutions)}")
    if "ratio" in body and body["ratio"] not in _RATIOS:
        raise _bad("ratio", "is not a supported ratio")
    if "duration" in body:
        d = body["duration"]
        ok = (
            isinstance(d, int)
            and not isinstance(d, bool)
            and (fam.durations[0] <= d <= fam.durations[1] or (fam.auto_duration and d == -1))
        )
        if not ok:
            raise _bad("duration", f"must be within {fam.durations}")
    if "frames" in body:
        f = body["frames"]
        if not fam.frames or not isinstance(f, int) or not 29 <= f <= 289 or (f - 25) % 4:
            raise _bad("frames", "must be 25+4n in [29, 289] on Seedance 1.0")
    if "generate_audio" in body and not fam.audio:
        raise _bad("generate_audio", "is not supported by this model")
    if body.get("draft") and (not fam.draft or body.get("resolution", "480p") != "480p"):
        raise _bad("draft", "is only for 480p on models with drafts")
    if body.get("service_tier", "default") not in (
        ("default", "flex") if fam.flex else ("default",)
    ):
        raise _bad("service_tier", "is not supported by this model")
    if "priority" in body and (not fam.priority or body["priority"] not in range(10)):
        raise _bad("priority", "must be 0-9 on Seedance 2.x")
    if "output_format" in body and (
        not fam.output_format or body["output_format"] not in ("mp4", "mov")
    ):
        raise _bad("output_format", "is not supported by this model")
    expires = body.get("execution_expires_after", 172800)
    if not isinstance(expires, int) or not 3600 <= expires <= 259200:
        raise _bad("execution_expires_after", "must be within [3600, 259200]")
    seed = body.get("seed", -1)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < -1:
        raise _bad("seed", "must be an integer >= -1")
    ident = body.get("safety_identifier", "")
    if not isinstance(ident, str) or len(ident) > 64:
        raise _bad("safety_identifier", "must be a string of at most 64 characters")
