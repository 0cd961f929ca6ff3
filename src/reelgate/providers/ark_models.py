"""The Seedance models on Volcengine Ark / BytePlus ModelArk, and Ark's validation rules (no I/O).

Each model's capabilities come from ``shared/spec/ark-video-api.md``. ``normalize_ark`` turns a
unified request into Ark's terms: ``size`` becomes ``resolution`` + ``ratio`` through the model's
pixel table (never dropped), legacy in-prompt flags (``--rs 720p``) are lifted out of the prompt
and checked like any option, and every option a model does not take is a 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reelgate.core.capabilities import (
    Mode,
    ModelCapabilities,
    NormalizedRequest,
    Option,
    check_duration,
    check_options,
)
from reelgate.core.errors import InvalidRequest
from reelgate.core.request import VideoRequest, invalid

PROVIDER = "ark"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")

# Pixel tables: (resolution, ratio) -> (width, height). The 1.0 table is Ark's documented one
# (720p 16:9 = 1248x704); 1.5 and 2.x use standard sizes (720p 16:9 = 1280x720).
_V1 = {
    "480p": {
        "16:9": (864, 480),
        "4:3": (736, 544),
        "1:1": (640, 640),
        "3:4": (544, 736),
        "9:16": (480, 864),
        "21:9": (960, 416),
    },
    "720p": {
        "16:9": (1248, 704),
        "4:3": (1120, 832),
        "1:1": (960, 960),
        "3:4": (832, 1120),
        "9:16": (704, 1248),
        "21:9": (1504, 640),
    },
    "1080p": {
        "16:9": (1920, 1088),
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1088, 1920),
        "21:9": (2176, 928),
    },
}
_V2 = {
    "480p": {
        "16:9": (864, 480),
        "4:3": (640, 480),
        "1:1": (480, 480),
        "3:4": (480, 640),
        "9:16": (480, 864),
        "21:9": (1120, 480),
    },
    "720p": {
        "16:9": (1280, 720),
        "4:3": (960, 720),
        "1:1": (720, 720),
        "3:4": (720, 960),
        "9:16": (720, 1280),
        "21:9": (1680, 720),
    },
    "1080p": {
        "16:9": (1920, 1080),
        "4:3": (1440, 1080),
        "1:1": (1080, 1080),
        "3:4": (1080, 1440),
        "9:16": (1080, 1920),
        "21:9": (2520, 1080),
    },
    "4k": {
        "16:9": (3840, 2160),
        "4:3": (2880, 2160),
        "1:1": (2160, 2160),
        "3:4": (2160, 2880),
        "9:16": (2160, 3840),
        "21:9": (5040, 2160),
    },
}
_SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}

# Legacy flags Ark reads from the end of the prompt, and the option each one sets.
_FLAGS = {
    "resolution": "resolution",
    "rs": "resolution",
    "ratio": "ratio",
    "rt": "ratio",
    "duration": "duration",
    "dur": "duration",
    "frames": "frames",
    "seed": "seed",
    "camerafixed": "camera_fixed",
    "cf": "camera_fixed",
    "watermark": "watermark",
    "wm": "watermark",
}
_FLAG = re.compile(r"\s--([a-z]+)\s+(\S+)")

IMAGE_MODES = ("first_frame", "first_last_frame", "reference_image")


@dataclass(frozen=True, slots=True)
class ArkModel:
    """What distinguishes one Seedance model, in the spec's terms."""

    name: str
    byteplus: str
    description: str
    text: bool
    image_modes: tuple[str, ...]
    max_reference: int
    resolutions: tuple[str, ...]
    default_resolution: str
    durations: tuple[int, int]
    auto_duration: bool
    table: Mapping[str, Mapping[str, tuple[int, int]]]
    frames: bool = False
    audio: bool = False
    draft: bool = False
    flex: bool = True
    priority: bool = False
    tools: bool = False
    output_format: bool = False
    fixed_durations: tuple[int, ...] = ()


MODELS: tuple[ArkModel, ...] = (
    ArkModel(
        "doubao-seaweed-241128",
        "seaweed-241128",
        "Seaweed (being retired)",
        True,
        ("first_frame",),
        0,
        ("480p", "720p"),
        "720p",
        (5, 10),
        False,
        _V1,
        fixed_durations=(5, 10),
    ),
    ArkModel(
        "doubao-seedance-1-0-lite-t2v-250428",
        "seedance-1-0-lite-t2v-250428",
        "Seedance 1.0 lite, text to video",
        True,
        (),
        0,
        ("480p", "720p", "1080p"),
        "720p",
        (2, 12),
        False,
        _V1,
        frames=True,
    ),
    ArkModel(
        "doubao-seedance-1-0-lite-i2v-250428",
        "seedance-1-0-lite-i2v-250428",
        "Seedance 1.0 lite, image to video",
        False,
        IMAGE_MODES,
        4,
        ("480p", "720p", "1080p"),
        "720p",
        (2, 12),
        False,
        _V1,
        frames=True,
    ),
    ArkModel(
        "doubao-seedance-1-0-pro-250528",
        "seedance-1-0-pro-250528",
        "Seedance 1.0 pro",
        True,
        ("first_frame", "first_last_frame"),
        0,
        ("480p", "720p", "1080p"),
        "1080p",
        (2, 12),
        False,
        _V1,
        frames=True,
    ),
    ArkModel(
        "doubao-seedance-1-0-pro-fast-251015",
        "seedance-1-0-pro-fast-251015",
        "Seedance 1.0 pro fast",
        True,
        ("first_frame",),
        0,
        ("480p", "720p", "1080p"),
        "1080p",
        (2, 12),
        False,
        _V1,
        frames=True,
    ),
    ArkModel(
        "doubao-seedance-1-5-pro-251215",
        "seedance-1-5-pro-251215",
        "Seedance 1.5 pro, with audio and drafts (being retired)",
        True,
        ("first_frame", "first_last_frame"),
        0,
        ("480p", "720p", "1080p"),
        "720p",
        (4, 12),
        True,
        _V2,
        audio=True,
        draft=True,
    ),
    ArkModel(
        "doubao-seedance-2-0-260128",
        "dreamina-seedance-2-0-260128",
        "Seedance 2.0",
        True,
        IMAGE_MODES,
        9,
        ("480p", "720p", "1080p", "4k"),
        "720p",
        (4, 15),
        True,
        _V2,
        audio=True,
        flex=False,
        priority=True,
        tools=True,
    ),
    ArkModel(
        "doubao-seedance-2-0-fast-260128",
        "dreamina-seedance-2-0-fast-260128",
        "Seedance 2.0 fast",
        True,
        IMAGE_MODES,
        9,
        ("480p", "720p"),
        "720p",
        (4, 15),
        True,
        _V2,
        audio=True,
        flex=False,
        priority=True,
        tools=True,
    ),
    ArkModel(
        "doubao-seedance-2-5-260628",
        "dreamina-seedance-2-5-260628",
        "Seedance 2.5",
        True,
        IMAGE_MODES,
        30,
        ("480p", "720p", "1080p", "4k"),
        "720p",
        (4, 30),
        True,
        _V2,
        audio=True,
        draft=True,
        flex=False,
        priority=True,
        tools=True,
        output_format=True,
    ),
)
BY_NAME = {m.name: m for m in MODELS} | {m.byteplus: m for m in MODELS}


def _options(m: ArkModel) -> dict[str, Option]:
    opts = {
        "resolution": Option(str, "output resolution", choices=m.resolutions),
        "ratio": Option(str, "aspect ratio", choices=(*RATIOS, "adaptive")),
        "seed": Option(int, "random seed, -1 for random", minimum=-1, maximum=2**32 - 1),
        "camera_fixed": Option(bool, "keep the camera still"),
        "watermark": Option(bool, "add Ark's watermark"),
        "return_last_frame": Option(bool, "also return the last frame as an image"),
        "execution_expires_after": Option(
            int, "seconds the task may wait and run upstream", minimum=3600, maximum=259200
        ),
        "safety_identifier": Option(str, "an end-user id for Ark's safety checks (<= 64)"),
        "service_tier": Option(
            str, "flex: half price, slower", choices=("default", "flex") if m.flex else ("default",)
        ),
    }
    if m.image_modes:
        opts["image_mode"] = Option(
            str,
            "how images are used (inferred from their count if absent)",
            choices=m.image_modes,
        )
    if m.frames:
        opts["frames"] = Option(
            int, "frame count 25+4n in [29, 289]; wins over duration", minimum=29, maximum=289
        )
    if m.audio:
        opts["generate_audio"] = Option(bool, "generate a soundtrack (default true)")
    if m.draft:
        opts["draft"] = Option(bool, "a cheap 480p draft")
    if m.priority:
        opts["priority"] = Option(int, "queue priority", minimum=0, maximum=9)
    if m.tools:
        opts["web_search"] = Option(bool, "let the model search the web")
    if m.output_format:
        opts["output_format"] = Option(str, "container", choices=("mp4", "mov"))
    return opts


def _sizes(m: ArkModel) -> dict[str, list[str]]:
    return {res: [f"{w}x{h}" for (w, h) in m.table[res].values()] for res in m.resolutions}


def capabilities() -> list[ModelCapabilities]:
    caps = []
    for m in MODELS:
        modes = {Mode.TEXT_TO_VIDEO} if m.text else set()
        if m.image_modes:
            modes.add(Mode.IMAGE_TO_VIDEO)
        max_images = {"first_frame": 1, "first_last_frame": 2}
        most = max([max_images.get(x, m.max_reference) for x in m.image_modes], default=0)
        caps.append(
            ModelCapabilities(
                name=m.name,
                provider=PROVIDER,
                description=m.description,
                modes=frozenset(modes),
                min_duration=m.durations[0],
                max_duration=m.durations[1],
                default_duration=5,
                default_size=(0, 0),
                max_side=6000,
                max_pixels=5040 * 2160,
                min_images=0 if m.text else 1,
                max_images=most,
                options=_options(m),
                aliases=(m.byteplus,),
                normalizer=normalize_ark,
                extra={
                    "sizes": _sizes(m),
                    "image_modes": list(m.image_modes),
                    "auto_duration": m.auto_duration,
                },
            )
        )
    return caps


def lift_flags(prompt: str) -> tuple[str, dict[str, str]]:
    """Split Ark's legacy ``--flag value`` pairs off a prompt (unknown flags stay in the text)."""
    found: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        option = _FLAGS.get(match.group(1))
        if option is None:
            return match.group(0)
        found[option] = match.group(2)
        return ""

    text = _FLAG.sub(take, " " + prompt).strip()
    return text, found


def _flag_value(option: str, raw: str, spec: Option) -> Any:
    if spec.kind is bool:
        if raw.lower() not in ("true", "false"):
            raise invalid(f"prompt --{option}", "must be true or false")
        return raw.lower() == "true"
    if spec.kind is int:
        if not raw.lstrip("-").isdigit():
            raise invalid(f"prompt --{option}", "must be an integer")
        return int(raw)
    return raw


def _size_to_resolution(m: ArkModel, width: int, height: int) -> tuple[str, str]:
    for res in m.resolutions:
        for ratio, (w, h) in m.table[res].items():
            if (w, h) == (width, height):
                return res, ratio
    # Not a table size: accept the common ones by aspect ratio and short side (1280x720 on 1.0).
    for res in m.resolutions:
        if min(width, height) != _SHORT_SIDE[res]:
            continue
        for ratio in RATIOS:
            a, b = (int(x) for x in ratio.split(":"))
            if abs(width / height - a / b) < 0.02:
                return res, ratio
    sizes = ", ".join(s for group in _sizes(m).values() for s in group)
    raise invalid("size", f"is not a size '{m.name}' can produce; use one of: {sizes}")


def normalize_ark(request: VideoRequest, caps: ModelCapabilities) -> NormalizedRequest:
    m = BY_NAME[caps.name]
    prompt, flags = lift_flags(request.prompt)
    options = check_options(request.metadata, caps)
    for option, raw in flags.items():
        if option == "duration":
            if request.duration is not None and str(request.duration) != raw:
                raise invalid("prompt --duration", "disagrees with 'duration'")
            continue
        spec = caps.options.get(option)
        if spec is None:
            raise InvalidRequest(
                f"model '{m.name}' does not support the prompt flag --{option}",
                code="unsupported_parameter",
                param=f"prompt --{option}",
            )
        value = spec.check(option, _flag_value(option, raw, spec))
        if option in options and options[option] != value:
            raise invalid(f"prompt --{option}", f"disagrees with 'metadata.{option}'")
        options[option] = value
    duration_raw = flags.get("duration")
    requested = request.duration
    if duration_raw is not None:
        if not duration_raw.lstrip("-").isdigit():
            raise invalid("prompt --duration", "must be an integer number of seconds")
        requested = int(duration_raw)
    duration = check_duration(requested, caps, frozenset({-1}) if m.auto_duration else frozenset())
    if m.fixed_durations and duration not in m.fixed_durations:
        raise invalid("duration", f"must be one of {m.fixed_durations} for '{m.name}'")
    if "frames" in options and (options["frames"] - 25) % 4:
        raise invalid("metadata.frames", "must be 25 + 4n (29, 33, … 289)")

    width = height = 0
    if request.size is not None:
        width, height = request.size
        res, ratio = _size_to_resolution(m, width, height)
        for key, value in (("resolution", res), ("ratio", ratio)):
            if key in options and options[key] != value:
                raise invalid("size", f"({width}x{height}) disagrees with '{key}' ({options[key]})")
            options[key] = value
    options.setdefault("resolution", m.default_resolution)
    if (
        "ratio" not in options
        and not request.images
        and m.name.startswith(("doubao-seedance-1-0", "doubao-seaweed"))
    ):
        options["ratio"] = "16:9"  # Ark's default for 1.0 text-to-video
    if not width and options.get("ratio", "adaptive") != "adaptive":
        width, height = m.table[options["resolution"]][options["ratio"]]
    if options.get("draft") and options["resolution"] != "480p":
        raise invalid("metadata.draft", "drafts are 480p only")
    if len(options.get("safety_identifier", "")) > 64:
        raise invalid("metadata.safety_identifier", "must be at most 64 characters")

    if request.images and not m.image_modes:
        raise InvalidRequest(
            f"model '{m.name}' generates from text only; it takes no images",
            code="unsupported_parameter",
            param="image",
        )
    if not prompt:
        raise invalid("prompt", "holds only --flags; it needs some text")
    if request.images:
        mode = options.get("image_mode") or _infer_mode(m, len(request.images))
        limits = {
            "first_frame": (1, 1),
            "first_last_frame": (2, 2),
            "reference_image": (1, m.max_reference),
        }[mode]
        if not limits[0] <= len(request.images) <= limits[1]:
            raise invalid(
                "images",
                f"{mode} takes {limits[0]}-{limits[1]} image(s) on "
                f"'{m.name}' (got {len(request.images)})",
            )
        options["image_mode"] = mode
    elif not m.text:
        raise InvalidRequest(
            f"model '{m.name}' needs at least one image", code="missing_parameter", param="image"
        )
    return NormalizedRequest(
        model=m.name,
        prompt=prompt,
        images=request.images,
        duration=duration,
        width=width,
        height=height,
        options=options,
    )


def _infer_mode(m: ArkModel, count: int) -> str:
    if count == 1 and "first_frame" in m.image_modes:
        return "first_frame"
    if count == 2 and "first_last_frame" in m.image_modes:
        return "first_last_frame"
    if "reference_image" in m.image_modes:
        return "reference_image"
    raise invalid("images", f"'{m.name}' takes {' or '.join(m.image_modes)} images, not {count}")
