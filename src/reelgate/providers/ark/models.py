"""The Seedance models on Volcengine Ark / BytePlus ModelArk, and Ark's validation rules (no I/O).

Each model's capabilities come from ``shared/spec/ark-video-api.md``. ``normalize_ark`` turns a
unified request into Ark's terms: ``size`` becomes ``resolution`` + ``ratio`` through the model's
pixel table (never dropped), legacy in-prompt flags (``--rs 720p``) are lifted out of the prompt
and checked like any option, and every option a model does not take is a 400 naming it.
"""

from __future__ import annotations

import re
from typing import Any

from reelgate.core import canonical
from reelgate.core.capabilities import (
    Mode,
    ModelCapabilities,
    NormalizedRequest,
    Option,
    check_duration,
    check_options,
)
from reelgate.core.errors import InvalidRequest
from reelgate.core.request import DURATION_RANGE, VideoRequest, invalid
from reelgate.providers.ark.catalog import (
    BY_NAME,
    MODELS,
    PROVIDER,
    RATIOS,
    SHORT_SIDE,
    ArkModel,
)

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
# How far from a listed ratio a size that is not in the table may be and still map to it.
_RATIO_SLACK = 0.02


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


def _frames(m: ArkModel) -> tuple[tuple[int, int], ...]:
    """Every frame size the model makes (each resolution in each ratio), largest last."""
    return tuple(size for res in m.resolutions for size in m.table[res].values())


def _bounds(m: ArkModel) -> tuple[int, int, int]:
    """The shortest and longest side and the most pixels a size may have: the table's, and
    those ``_size_to_resolution`` also maps (a resolution's short side, near a ratio)."""
    sizes = list(_frames(m))
    for res in m.resolutions:
        short = SHORT_SIDE[res]
        for ratio in RATIOS:
            a, b = (int(x) for x in ratio.split(":"))
            sizes.append((short, int(short * (max(a, b) / min(a, b) + _RATIO_SLACK))))
    return (
        min(min(size) for size in sizes),
        max(max(size) for size in sizes),
        max(w * h for w, h in sizes),
    )


def capabilities() -> list[ModelCapabilities]:
    caps = []
    for m in MODELS:
        modes = {Mode.TEXT_TO_VIDEO} if m.text else set()
        if m.image_modes:
            modes.add(Mode.IMAGE_TO_VIDEO)
        max_images = {"first_frame": 1, "first_last_frame": 2}
        most = max([max_images.get(x, m.max_reference) for x in m.image_modes], default=0)
        frames = _frames(m)
        min_side, max_side, max_pixels = _bounds(m)
        caps.append(
            ModelCapabilities(
                name=m.name,
                provider=PROVIDER,
                description=m.description,
                modes=frozenset(modes),
                min_duration=m.durations[0],
                max_duration=m.durations[1],
                default_duration=5,
                # What text-to-video makes without a size, ratio or resolution (Ark's 16:9 at the
                # model's default resolution); images without a ratio keep theirs ("adaptive").
                default_size=m.table[m.default_resolution]["16:9"],
                min_side=min_side,
                max_side=max_side,
                max_pixels=max_pixels,
                sizes=frames,
                min_images=0 if m.text else 1,
                max_images=most,
                options=_options(m),
                aliases=(m.byteplus,),
                normalizer=normalize_ark,
                extra={
                    "sizes": _sizes(m),
                    "resolutions": {
                        res: {ratio: f"{w}x{h}" for ratio, (w, h) in m.table[res].items()}
                        for res in m.resolutions
                    },
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
        return canonical.integer(raw, f"prompt --{option}")
    return raw


def _size_to_resolution(m: ArkModel, width: int, height: int) -> tuple[str, str]:
    for res in m.resolutions:
        for ratio, (w, h) in m.table[res].items():
            if (w, h) == (width, height):
                return res, ratio
    # Not a table size: accept the common ones by aspect ratio and short side (1280x720 on 1.0).
    for res in m.resolutions:
        if min(width, height) != SHORT_SIDE[res]:
            continue
        for ratio in RATIOS:
            a, b = (int(x) for x in ratio.split(":"))
            if abs(width / height - a / b) < _RATIO_SLACK:
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
        low, high = DURATION_RANGE
        requested = canonical.integer(
            duration_raw,
            "prompt --duration",
            low=low,
            high=high,
            what="an integer number of seconds",
        )
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
