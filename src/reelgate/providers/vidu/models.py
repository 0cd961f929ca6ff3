"""Vidu's models as reelgate capabilities, and the strict normalizer (no I/O).

A request is checked against the rule of the mode it uses (text, first frame, first+last frame,
reference images: each its own Vidu endpoint): its duration, its resolution (which may depend
on the duration), its aspect ratio where the endpoint takes one, its image count and the
options that endpoint documents for that model. Anything else is a 400 naming it, never dropped.

Options are stored under reelgate's names (``ratio``, ``generate_audio``, ``service_tier``:
``flex`` is Vidu's off-peak); Vidu's own names (``aspect_ratio``, ``audio``, ``off_peak``) are
accepted in ``metadata`` and canonicalised, so prices and routing see one name per concept.
"""

from __future__ import annotations

from typing import Any

from reelgate.core.capabilities import Mode, ModelCapabilities, NormalizedRequest, Option
from reelgate.core.errors import InvalidRequest
from reelgate.core.request import invalid
from reelgate.providers.vidu.catalog import (
    BY_NAME,
    COMMON,
    IMAGE_MODES,
    MODE_OF_IMAGE_MODE,
    MODELS,
    MOVEMENTS,
    NATIVE_ALIASES,
    PROVIDER,
    SHORT_SIDE,
    STYLES,
    TEXT,
    ModeRule,
    ViduModel,
)

MAX_SEED = 2**31 - 1


def _option_specs(m: ViduModel) -> dict[str, Option]:
    rules = list(m.modes.values())
    names = set(COMMON).union(*(r.options for r in rules))
    resolutions = sorted(
        {r for rule in rules for r in rule.all_resolutions}, key=SHORT_SIDE.__getitem__
    )
    specs: dict[str, Option] = {
        "resolution": Option(str, "output resolution", choices=tuple(resolutions)),
        "seed": Option(int, "random seed (0: random)", minimum=0, maximum=MAX_SEED),
        "service_tier": Option(
            str,
            "flex: Vidu's off-peak (cheaper, done within 48 h)",
            choices=("default", "flex") if m.off_peak else ("default",),
        ),
        "watermark": Option(bool, "add Vidu's watermark"),
        "wm_position": Option(int, "watermark corner: 1 top-left … 4 bottom-left", 1, 4),
        "wm_url": Option(str, "watermark image URL"),
        "style": Option(str, "visual style", choices=STYLES),
        "movement_amplitude": Option(str, "how much things move", choices=MOVEMENTS),
        "bgm": Option(bool, "add background music"),
        "generate_audio": Option(
            bool, f"synchronised audio (default {str(m.audio_default).lower()})"
        ),
        "voice_id": Option(str, "voice for the audio (Vidu picks one when absent)"),
        "is_rec": Option(bool, "let Vidu write the prompt (+10 credits)"),
    }
    ratios = sorted({r for rule in rules for r in rule.ratios})
    if ratios:
        names.add("ratio")
        specs["ratio"] = Option(str, "aspect ratio", choices=tuple(ratios))
    image_modes = [IMAGE_MODES[mode] for mode in m.modes if mode != TEXT]
    if image_modes:
        names.add("image_mode")
        specs["image_mode"] = Option(
            str, "how images are used (inferred from their count)", choices=tuple(image_modes)
        )
    return {name: spec for name, spec in specs.items() if name in names}


def _default_size(m: ViduModel) -> tuple[int, int]:
    rule = m.modes.get(TEXT) or next(iter(m.modes.values()))
    return frame(rule.resolution_rule(rule.default_duration)[1], "16:9")


def capabilities() -> list[ModelCapabilities]:
    caps = []
    for m in MODELS:
        rules = list(m.modes.values())
        modes = {Mode.IMAGE_TO_VIDEO} if any(mode != TEXT for mode in m.modes) else set()
        if TEXT in m.modes:
            modes.add(Mode.TEXT_TO_VIDEO)
        durations = sorted({d for r in rules for d in r.durations})
        caps.append(
            ModelCapabilities(
                name=m.name,
                provider=PROVIDER,
                description=m.description,
                modes=frozenset(modes),
                min_duration=durations[0],
                max_duration=durations[-1],
                default_duration=(m.modes.get(TEXT) or rules[0]).default_duration,
                default_size=_default_size(m),
                min_side=360,
                max_side=1920,
                max_pixels=1920 * 1080,
                min_images=0 if TEXT in m.modes else 1,
                max_images=max(r.images[1] for r in rules),
                options=_option_specs(m),
                normalizer=normalize_vidu,
                extra={
                    "modes": {
                        IMAGE_MODES.get(mode, "text"): {
                            "durations": list(rule.durations),
                            "resolutions": {
                                str(d or "any"): list(choices)
                                for d, (choices, _) in rule.resolutions.items()
                            },
                            "ratios": list(rule.ratios),
                            "images": list(rule.images),
                        }
                        for mode, rule in m.modes.items()
                    },
                    "sizes": {
                        res: [f"{w}x{h}" for w, h in (frame(res, r) for r in ("16:9", "9:16"))]
                        for res in _option_specs(m)["resolution"].choices
                    },
                },
            )
        )
    return caps


def frame(resolution: str, ratio: str) -> tuple[int, int]:
    """The frame of a resolution (its short side) in an aspect ratio, even sides."""
    short = SHORT_SIDE[resolution]
    a, b = (int(x) for x in ratio.split(":"))
    long = round(short * max(a, b) / min(a, b) / 2) * 2
    return (long, short) if a >= b else (short, long)


def _canonical_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Vidu's own option names turned into reelgate's (both given and different: a 400)."""
    out = dict(metadata)
    for native, ours in NATIVE_ALIASES.items():
        if native not in out:
            continue
        value = out.pop(native)
        if native == "off_peak":
            if not isinstance(value, bool):
                raise invalid("metadata.off_peak", "must be true or false")
            value = "flex" if value else "default"
        if ours in out and out[ours] != value:
            raise invalid(f"metadata.{native}", f"disagrees with 'metadata.{ours}'")
        out[ours] = value
    return out


def _mode_of(m: ViduModel, images: int, asked: str | None) -> str:
    if asked is not None:
        return MODE_OF_IMAGE_MODE[asked]
    if images == 0:
        if TEXT not in m.modes:
            raise InvalidRequest(
                f"model '{m.name}' needs at least one image",
                code="missing_parameter",
                param="image",
            )
        return TEXT
    candidates = ("first_frame", "first_last_frame", "reference") if images <= 2 else ()
    for mode in candidates:
        rule = m.modes.get(mode)
        if rule is not None and rule.images[0] <= images <= rule.images[1]:
            return mode
    if "reference" in m.modes:
        return "reference"
    raise invalid("images", f"'{m.name}' takes no request with {images} images")


def _check(
    m: ViduModel, mode: str, rule: ModeRule, options: dict[str, Any], caps: ModelCapabilities
) -> None:
    allowed = COMMON | rule.options | ({"ratio"} if rule.ratios else set()) | {"image_mode"}
    for name, value in options.items():
        spec = caps.options.get(name)
        if spec is None or name not in allowed:
            where = f"{IMAGE_MODES.get(mode, 'text-to-video')} on '{m.name}'"
            raise InvalidRequest(
                f"'metadata.{name}' is not an option of {where}",
                code="unsupported_parameter",
                param=f"metadata.{name}",
            )
        options[name] = spec.check(name, value)


def normalize_vidu(request: Any, caps: ModelCapabilities) -> NormalizedRequest:
    m = BY_NAME[caps.name]
    options = _canonical_metadata(dict(request.metadata))
    asked = options.get("image_mode")
    if asked is not None and caps.options.get("image_mode") is not None:
        asked = caps.options["image_mode"].check("image_mode", asked)
    mode = _mode_of(m, len(request.images), asked if isinstance(asked, str) else None)
    rule = m.modes[mode]
    _check(m, mode, rule, options, caps)
    low, high = rule.images
    if not low <= len(request.images) <= high:
        what = IMAGE_MODES.get(mode, "text-to-video")
        raise invalid("images", f"{what} on '{m.name}' takes {low}-{high} image(s)")
    if len(request.prompt) > m.max_prompt:
        raise invalid("prompt", f"must be at most {m.max_prompt} characters on '{m.name}'")
    duration = rule.default_duration if request.duration is None else request.duration
    if duration not in rule.durations:
        allowed = ", ".join(str(d) for d in rule.durations)
        raise invalid("duration", f"must be one of {allowed} s for this mode of '{m.name}'")
    choices, default_resolution = rule.resolution_rule(duration)
    width = height = 0
    if request.size is not None:
        width, height = request.size
        if not rule.ratios:
            raise invalid("size", "cannot be chosen here: the first frame decides the shape")
        for key, value in zip(("resolution", "ratio"), _size_to(rule, width, height), strict=True):
            if key in options and options[key] != value:
                raise invalid("size", f"({width}x{height}) disagrees with '{key}' ({options[key]})")
            options[key] = value
    options.setdefault("resolution", default_resolution)
    if options["resolution"] not in choices:
        raise invalid(
            "metadata.resolution",
            f"must be one of {', '.join(choices)} for {duration} s on '{m.name}'",
        )
    if rule.ratios:
        options.setdefault("ratio", "16:9")
        if options["ratio"] not in rule.ratios:
            raise invalid("metadata.ratio", f"must be one of {', '.join(rule.ratios)} here")
        width, height = frame(options["resolution"], options["ratio"])
    audio = bool(
        options.get("generate_audio", m.audio_default and "generate_audio" in rule.options)
    )
    if options.get("service_tier") == "flex" and audio and not m.off_peak_with_audio:
        raise invalid("metadata.service_tier", "off-peak cannot be combined with audio here")
    if options.get("bgm") and m.name.startswith("viduq2") and duration >= 9:
        raise invalid("metadata.bgm", "has no effect at 9 or 10 s on Q2 models")
    if "voice_id" in options and not audio:
        raise invalid("metadata.voice_id", "needs generate_audio=true")
    if mode != TEXT:
        options["image_mode"] = IMAGE_MODES[mode]
    if "generate_audio" in caps.options:
        # Priced as Vidu will run it (a mode without audio makes none); sent where it is taken.
        options["generate_audio"] = audio
    return NormalizedRequest(
        model=m.name,
        prompt=request.prompt,
        images=request.images,
        duration=duration,
        width=width,
        height=height,
        options=options,
    )


def _size_to(rule: ModeRule, width: int, height: int) -> tuple[str, str]:
    """The (resolution, ratio) a size names: its short side and its shape, both exact."""
    for resolution in rule.all_resolutions:
        for ratio in rule.ratios:
            if frame(resolution, ratio) == (width, height):
                return resolution, ratio
    sizes = ", ".join(
        f"{w}x{h}"
        for res in rule.all_resolutions
        for (w, h) in (frame(res, r) for r in rule.ratios)
    )
    raise invalid("size", f"is not a size this mode makes; use one of: {sizes}")


def mode_of(request: NormalizedRequest) -> str:
    """The mode (endpoint) a normalized request is created at."""
    asked = request.options.get("image_mode")
    return MODE_OF_IMAGE_MODE[str(asked)] if asked else TEXT
