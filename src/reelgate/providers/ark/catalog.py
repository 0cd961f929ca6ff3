"""The Seedance models on Volcengine Ark / BytePlus ModelArk, as data (no I/O, no rules).

From ``shared/spec/ark-video-api.md``: names on both clouds, modes, durations, resolutions,
the pixel tables that turn a resolution and ratio into a frame size, and per-model features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROVIDER = "ark"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")

# Pixel tables: (resolution, ratio) -> (width, height). The 1.0 table is Ark's documented one
# (720p 16:9 = 1248x704); 1.5 and 2.x use standard sizes (720p 16:9 = 1280x720).
V1 = {
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
V2 = {
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
SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}

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
        V1,
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
        V1,
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
        V1,
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
        V1,
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
        V1,
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
        V2,
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
        V2,
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
        V2,
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
        V2,
        audio=True,
        draft=True,
        flex=False,
        priority=True,
        tools=True,
        output_format=True,
    ),
)
BY_NAME = {m.name: m for m in MODELS} | {m.byteplus: m for m in MODELS}
