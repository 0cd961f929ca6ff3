"""What the Vidu simulator accepts in a create body, endpoint by endpoint and model by model
(``shared/spec/providers/vidu.md`` §3-§4), with Vidu's error reasons for what it refuses."""

from __future__ import annotations

from typing import Any

from reelgate.providers.vidu import catalog

__all__ = ["ENDPOINT_MODES", "ViduError", "check_body"]

ENDPOINT_MODES = {endpoint: mode for mode, endpoint in catalog.ENDPOINTS.items()}
_COMMON = {
    "model": str,
    "prompt": str,
    "duration": int,
    "seed": int,
    "resolution": str,
    "payload": str,
    "off_peak": bool,
    "watermark": bool,
    "wm_position": int,
    "wm_url": str,
    "meta_data": str,
    "callback_url": str,
}
_BY_OPTION = {
    "style": ("style", str),
    "movement_amplitude": ("movement_amplitude", str),
    "bgm": ("bgm", bool),
    "generate_audio": ("audio", bool),
    "voice_id": ("voice_id", str),
    "is_rec": ("is_rec", bool),
}
MAX_PAYLOAD = 1_048_576


class ViduError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _bad(reason: str, message: str) -> ViduError:
    return ViduError(400, reason, message)


def check_body(endpoint: str, body: Any) -> catalog.ViduModel:
    """The model a body of ``endpoint`` asks for; raises ``ViduError`` (400) as Vidu would."""
    if not isinstance(body, dict):
        raise _bad("BadRequest", "bad request")
    mode = ENDPOINT_MODES[endpoint]
    model = catalog.BY_NAME.get(str(body.get("model")))
    if model is None or mode not in model.modes:
        raise _bad("FieldInvalid", "invalid field: model")
    rule = model.modes[mode]
    allowed: dict[str, type] = dict(_COMMON)
    if mode != catalog.TEXT:
        allowed["images"] = list
    if rule.ratios:
        allowed["aspect_ratio"] = str
    for option in rule.options:
        name, kind = _BY_OPTION[option]
        allowed[name] = kind
    unwanted = sorted(set(body) - set(allowed))
    if unwanted:
        raise _bad("FieldUnwanted", f"unwanted field: {', '.join(unwanted)}")
    for name, kind in allowed.items():
        value = body.get(name)
        if value is None:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad("FieldInvalid", f"invalid field: {name}")
        if kind is not int and not isinstance(value, kind):
            raise _bad("FieldInvalid", f"invalid field: {name}")
    prompt = body.get("prompt")
    if mode in (catalog.TEXT, catalog.REFERENCE) and not prompt:
        raise _bad("FieldLacking", "field is missing or empty: prompt")
    if isinstance(prompt, str) and len(prompt) > model.max_prompt:
        raise _bad("FieldInvalid", "invalid field: prompt")
    _check_images(mode, rule, body)
    duration = body.get("duration", rule.default_duration)
    if duration not in rule.durations:
        raise _bad("FieldInvalid", "invalid field: duration")
    choices, _ = rule.resolution_rule(duration)
    if body.get("resolution", choices[0]) not in choices:
        raise _bad("FieldInvalid", "invalid field: resolution")
    if "aspect_ratio" in body and body["aspect_ratio"] not in rule.ratios:
        raise _bad("FieldInvalid", "invalid field: aspect_ratio")
    if body.get("style", "general") not in catalog.STYLES:
        raise _bad("FieldInvalid", "invalid field: style")
    if body.get("movement_amplitude", "auto") not in catalog.MOVEMENTS:
        raise _bad("FieldInvalid", "invalid field: movement_amplitude")
    if not 1 <= int(body.get("wm_position", 3)) <= 4:
        raise _bad("FieldInvalid", "invalid field: wm_position")
    if len(str(body.get("payload", ""))) > MAX_PAYLOAD:
        raise _bad("FieldInvalid", "invalid field: payload")
    audio = body.get("audio", model.audio_default and "generate_audio" in rule.options)
    if body.get("off_peak") and (not model.off_peak or (audio and not model.off_peak_with_audio)):
        raise _bad("FieldInvalid", "invalid field: off_peak")
    return model


def _check_images(mode: str, rule: catalog.ModeRule, body: dict[str, Any]) -> None:
    if mode == catalog.TEXT:
        return
    images = body.get("images")
    if not images:
        raise _bad("FieldLacking", "field is missing or empty: images")
    low, high = rule.images
    if not low <= len(images) <= high:
        raise _bad("FieldItemCountOutOfRange", "field item count out of range: images")
    for image in images:
        if not isinstance(image, str) or not image.startswith(
            ("http://", "https://", "data:image/")
        ):
            raise _bad("ImageFormatInvalid", "invalid image format")
