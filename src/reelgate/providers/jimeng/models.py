"""Jimeng video 3.0 on Volcengine's visual API: the models, their ``req_key`` per mode, and
the strict normalizer (no I/O). Facts and sources: ``docs/providers/jimeng.md`` §3.

The public names are new-api's (``jimeng_v30``, ``jimeng_v30_1080p``, ``jimeng_v30_pro``):
each is one model whose modes are separate Volcengine services (``req_key``), chosen by the
number of images as new-api chooses them. Durations are 5 or 10 s (``frames`` 121 or 241);
an aspect ratio is taken by text-to-video only (a first frame decides its own shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reelgate.core.capabilities import (
    Mode,
    ModelCapabilities,
    NormalizedRequest,
    Option,
    check_options,
)
from reelgate.core.errors import InvalidRequest
from reelgate.core.request import invalid

PROVIDER = "jimeng"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
FRAMES = {5: 121, 10: 241}
MAX_PROMPT = 800
TEXT, FIRST_FRAME, FIRST_LAST = "text", "first_frame", "first_last_frame"

# 1080p frames as the 3.0 Pro page lists them; 720p as Seedance 1.0's table (UNCONFIRMED).
SIZES = {
    "1080p": {
        "21:9": (2176, 928),
        "16:9": (1920, 1088),
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1088, 1920),
    },
    "720p": {
        "21:9": (1504, 640),
        "16:9": (1248, 704),
        "4:3": (1120, 832),
        "1:1": (960, 960),
        "3:4": (832, 1120),
        "9:16": (704, 1248),
    },
}


@dataclass(frozen=True, slots=True)
class JimengModel:
    name: str
    description: str
    resolution: str
    req_keys: dict[str, str]  # mode -> req_key


MODELS = (
    JimengModel(
        "jimeng_v30",
        "Jimeng video 3.0, 720p: text, first frame, first+last frame",
        "720p",
        {
            TEXT: "jimeng_t2v_v30",
            FIRST_FRAME: "jimeng_i2v_first_v30",
            FIRST_LAST: "jimeng_i2v_first_tail_v30",
        },
    ),
    JimengModel(
        "jimeng_v30_1080p",
        "Jimeng video 3.0, 1080p: text, first frame, first+last frame",
        "1080p",
        {
            TEXT: "jimeng_t2v_v30_1080p",
            FIRST_FRAME: "jimeng_i2v_first_v30_1080",
            FIRST_LAST: "jimeng_i2v_first_tail_v30_1080",
        },
    ),
    JimengModel(
        "jimeng_v30_pro",
        "Jimeng video 3.0 Pro, 1080p: text or a first frame, multi-shot",
        "1080p",
        {TEXT: "jimeng_ti2v_v30_pro", FIRST_FRAME: "jimeng_ti2v_v30_pro"},
    ),
)
BY_NAME = {m.name: m for m in MODELS}
REQ_KEYS = frozenset(k for m in MODELS for k in m.req_keys.values())
# What each req_key takes (the simulator's rules too): (takes a ratio, image counts).
REQ_KEY_RULES: dict[str, tuple[bool, tuple[int, ...]]] = {
    "jimeng_t2v_v30": (True, (0,)),
    "jimeng_t2v_v30_1080p": (True, (0,)),
    "jimeng_i2v_first_v30": (False, (1,)),
    "jimeng_i2v_first_v30_1080": (False, (1,)),
    "jimeng_i2v_first_tail_v30": (False, (2,)),
    "jimeng_i2v_first_tail_v30_1080": (False, (2,)),
    "jimeng_ti2v_v30_pro": (True, (0, 1)),
}
_IMAGE_MODES = {1: FIRST_FRAME, 2: FIRST_LAST}


def _options(m: JimengModel) -> dict[str, Option]:
    modes = [mode for mode in (FIRST_FRAME, FIRST_LAST) if mode in m.req_keys]
    return {
        "resolution": Option(str, "output resolution (fixed per model)", choices=(m.resolution,)),
        "seed": Option(int, "random seed, -1 for random", minimum=-1, maximum=2**32 - 1),
        "ratio": Option(str, "aspect ratio (text-to-video only)", choices=RATIOS),
        "image_mode": Option(str, "how images are used (from their count)", choices=tuple(modes)),
    }


def capabilities() -> list[ModelCapabilities]:
    caps = []
    for m in MODELS:
        table = SIZES[m.resolution]
        most = 2 if FIRST_LAST in m.req_keys else 1
        caps.append(
            ModelCapabilities(
                name=m.name,
                provider=PROVIDER,
                description=m.description,
                modes=frozenset({Mode.TEXT_TO_VIDEO, Mode.IMAGE_TO_VIDEO}),
                min_duration=5,
                max_duration=10,
                default_duration=5,
                default_size=table["16:9"],
                min_side=min(min(s) for s in table.values()),
                max_side=max(max(s) for s in table.values()),
                max_pixels=max(w * h for w, h in table.values()),
                sizes=tuple(table.values()),
                max_images=most,
                options=_options(m),
                normalizer=normalize_jimeng,
                extra={
                    "req_keys": dict(m.req_keys),
                    "resolution": m.resolution,
                    "sizes": {m.resolution: [f"{w}x{h}" for w, h in table.values()]},
                },
            )
        )
    return caps


def normalize_jimeng(request: Any, caps: ModelCapabilities) -> NormalizedRequest:
    m = BY_NAME[caps.name]
    options = check_options(request.metadata, caps)
    count = len(request.images)
    mode = TEXT if count == 0 else _IMAGE_MODES.get(count, "")
    if mode not in m.req_keys:
        raise invalid("images", f"'{m.name}' takes 0-{caps.max_images} images (got {count})")
    if options.get("image_mode", mode if mode != TEXT else None) not in (mode, None):
        raise invalid("metadata.image_mode", f"does not fit {count} image(s)")
    if request.duration is not None and request.duration not in FRAMES:
        raise invalid("duration", f"must be 5 or 10 seconds on '{m.name}'")
    duration = request.duration or 5
    if len(request.prompt) > MAX_PROMPT:
        raise invalid("prompt", f"must be at most {MAX_PROMPT} characters on Jimeng")
    kinds = {image.startswith("data:") for image in request.images}
    if len(kinds) > 1:
        raise invalid("images", "must be all URLs or all data URIs on Jimeng")
    table = SIZES[m.resolution]
    width = height = 0
    if mode == TEXT:
        if request.size is not None:
            ratio = next((r for r, s in table.items() if s == tuple(request.size)), None)
            if ratio is None:
                sizes = ", ".join(f"{w}x{h}" for w, h in table.values())
                raise invalid("size", f"is not a size '{m.name}' makes; use one of: {sizes}")
            if options.get("ratio", ratio) != ratio:
                raise invalid("size", f"disagrees with 'ratio' ({options['ratio']})")
            options["ratio"] = ratio
        options.setdefault("ratio", "16:9")
        width, height = table[options["ratio"]]
    elif "ratio" in options or request.size is not None:
        raise InvalidRequest(
            "an aspect ratio or size is taken by text-to-video only: the first frame decides",
            code="unsupported_parameter",
            param="metadata.ratio" if "ratio" in options else "size",
        )
    else:
        options["image_mode"] = mode
    options["resolution"] = m.resolution  # fixed per model: what prices see
    return NormalizedRequest(
        model=m.name,
        prompt=request.prompt,
        images=request.images,
        duration=duration,
        width=width,
        height=height,
        options=options,
    )


def req_key(request: NormalizedRequest) -> str:
    count = len(request.images)
    mode = TEXT if count == 0 else _IMAGE_MODES[count]
    return BY_NAME[request.model].req_keys[mode]
