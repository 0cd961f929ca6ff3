"""Vidu's video models, as data (no I/O, no rules): per model and per mode (endpoint), the
durations, resolutions, aspect ratios, image counts and the options Vidu documents there.

From ``shared/spec/providers/vidu.md`` §3-§4. Where the spec marks a model or mode as
UNCONFIRMED (``viduq3-pro-fast``, Q3 reference and start-end, ``extend``), it is left out
rather than guessed. Resolutions may depend on the duration (``vidu2.0``: 4 s in 360p-1080p,
8 s in 720p only); ``resolutions`` maps a duration (``0``: any other) to (choices, default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PROVIDER = "vidu"

# Modes: the endpoint under /ent/v2 each one is created at, and the ``image_mode`` name
# reelgate uses for it (Ark's names, one name per concept).
TEXT, FIRST_FRAME, FIRST_LAST, REFERENCE = "text", "first_frame", "first_last_frame", "reference"
ENDPOINTS = {
    TEXT: "text2video",
    FIRST_FRAME: "img2video",
    FIRST_LAST: "start-end2video",
    REFERENCE: "reference2video",
}
IMAGE_MODES = {
    FIRST_FRAME: "first_frame",
    FIRST_LAST: "first_last_frame",
    REFERENCE: "reference_image",
}
MODE_OF_IMAGE_MODE = {v: k for k, v in IMAGE_MODES.items()}

SHORT_SIDE = {"360p": 360, "540p": 540, "720p": 720, "1080p": 1080}
RATIOS_Q1 = ("16:9", "9:16", "1:1")
RATIOS_Q2 = ("16:9", "9:16", "3:4", "4:3", "1:1")
MOVEMENTS = ("auto", "small", "medium", "large")
STYLES = ("general", "anime")

Resolutions = Mapping[int, tuple[tuple[str, ...], str]]
ALL_Q = {0: (("540p", "720p", "1080p"), "720p")}
FAST = {0: (("720p", "1080p"), "720p")}
Q1 = {0: (("1080p",), "1080p")}
V20 = {4: (("360p", "720p", "1080p"), "360p"), 8: (("720p",), "720p")}
V20_REF = {0: (("360p", "720p"), "360p")}


@dataclass(frozen=True, slots=True)
class ModeRule:
    """What one endpoint accepts for one model."""

    durations: tuple[int, ...]
    default_duration: int
    resolutions: Resolutions
    images: tuple[int, int]  # fewest and most images
    ratios: tuple[str, ...] = ()  # empty: no aspect_ratio (the first frame decides)
    # Option names (reelgate's) this endpoint takes for this model, beyond the common ones.
    options: frozenset[str] = frozenset()

    def resolution_rule(self, duration: int) -> tuple[tuple[str, ...], str]:
        return self.resolutions.get(duration) or self.resolutions[0]

    @property
    def all_resolutions(self) -> tuple[str, ...]:
        found: list[str] = []
        for choices, _ in self.resolutions.values():
            found.extend(r for r in choices if r not in found)
        return tuple(sorted(found, key=SHORT_SIDE.__getitem__))


@dataclass(frozen=True, slots=True)
class ViduModel:
    name: str
    description: str
    modes: Mapping[str, ModeRule]
    max_prompt: int = 2000
    # Off-peak (half price, within 48 h): where Vidu offers it, and whether audio may be on.
    off_peak: bool = True
    off_peak_with_audio: bool = False
    # Whether ``audio`` defaults to on (Q3's audio-visual sync).
    audio_default: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)


def _range(low: int, high: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1))


_I2V_Q = frozenset({"movement_amplitude", "bgm", "generate_audio", "voice_id", "is_rec"})
_SE = frozenset({"movement_amplitude", "bgm", "is_rec"})

MODELS: tuple[ViduModel, ...] = (
    ViduModel(
        "viduq3-pro",
        "Vidu Q3 Pro: audio-visual sync and shot segmentation, 1-16 s",
        {
            TEXT: ModeRule(
                _range(1, 16), 5, ALL_Q, (0, 0), RATIOS_Q2, frozenset({"generate_audio"})
            ),
            FIRST_FRAME: ModeRule(
                _range(1, 16), 5, ALL_Q, (1, 1), options=frozenset({"generate_audio", "is_rec"})
            ),
        },
        max_prompt=5000,
        off_peak_with_audio=True,
        audio_default=True,
    ),
    ViduModel(
        "viduq3-turbo",
        "Vidu Q3 Turbo: faster Q3 with audio, 1-16 s",
        {
            TEXT: ModeRule(
                _range(1, 16), 5, ALL_Q, (0, 0), RATIOS_Q2, frozenset({"generate_audio"})
            ),
            FIRST_FRAME: ModeRule(
                _range(1, 16), 5, ALL_Q, (1, 1), options=frozenset({"generate_audio", "is_rec"})
            ),
        },
        max_prompt=5000,
        off_peak=False,  # off-peak is viduq3-pro's only among Q3 (spec §3, UNCONFIRMED)
        audio_default=True,
    ),
    ViduModel(
        "viduq2",
        "Vidu Q2: text and reference images to video, 1-10 s",
        {
            TEXT: ModeRule(_range(1, 10), 5, ALL_Q, (0, 0), RATIOS_Q2, frozenset({"bgm"})),
            REFERENCE: ModeRule(_range(1, 10), 5, ALL_Q, (1, 7), RATIOS_Q2, frozenset({"bgm"})),
        },
    ),
    ViduModel(
        "viduq2-pro",
        "Vidu Q2 Pro: first frame (with audio) and first+last frame, 1-10 s",
        {
            FIRST_FRAME: ModeRule(_range(1, 10), 5, ALL_Q, (1, 1), options=_I2V_Q),
            FIRST_LAST: ModeRule(_range(1, 8), 5, ALL_Q, (2, 2), options=_SE),
        },
    ),
    ViduModel(
        "viduq2-pro-fast",
        "Vidu Q2 Pro Fast: the cheapest Q2, 720p/1080p",
        {
            FIRST_FRAME: ModeRule(_range(1, 10), 5, FAST, (1, 1), options=_I2V_Q),
            FIRST_LAST: ModeRule(_range(1, 8), 5, FAST, (2, 2), options=_SE),
        },
    ),
    ViduModel(
        "viduq2-turbo",
        "Vidu Q2 Turbo: first frame and first+last frame, 1-10 s",
        {
            FIRST_FRAME: ModeRule(_range(1, 10), 5, ALL_Q, (1, 1), options=_I2V_Q),
            FIRST_LAST: ModeRule(_range(1, 8), 5, ALL_Q, (2, 2), options=_SE),
        },
    ),
    ViduModel(
        "viduq1",
        "Vidu Q1: 5 s 1080p from text, a first frame, first+last or references",
        {
            TEXT: ModeRule(
                (5,), 5, Q1, (0, 0), RATIOS_Q1, frozenset({"style", "movement_amplitude", "bgm"})
            ),
            FIRST_FRAME: ModeRule((5,), 5, Q1, (1, 1), options=_I2V_Q),
            FIRST_LAST: ModeRule((5,), 5, Q1, (2, 2), options=_SE),
            REFERENCE: ModeRule(
                (5,), 5, Q1, (1, 7), RATIOS_Q1, frozenset({"movement_amplitude", "bgm"})
            ),
        },
    ),
    ViduModel(
        "viduq1-classic",
        "Vidu Q1 Classic: 5 s 1080p from a first frame or first+last",
        {
            FIRST_FRAME: ModeRule((5,), 5, Q1, (1, 1), options=_I2V_Q),
            FIRST_LAST: ModeRule((5,), 5, Q1, (2, 2), options=_SE),
        },
    ),
    ViduModel(
        "vidu2.0",
        "Vidu 2.0: the fastest, 4 or 8 s",
        {
            FIRST_FRAME: ModeRule(
                (4, 8), 4, V20, (1, 1), options=frozenset({"movement_amplitude", "bgm", "is_rec"})
            ),
            FIRST_LAST: ModeRule((4, 8), 4, V20, (2, 2), options=_SE),
            REFERENCE: ModeRule(
                (4,), 4, V20_REF, (1, 3), RATIOS_Q1, frozenset({"movement_amplitude", "bgm"})
            ),
        },
    ),
    ViduModel(
        "vidu1.5",
        "Vidu 1.5 (legacy): text to video, 4 or 8 s",
        {
            TEXT: ModeRule(
                (4, 8), 4, V20, (0, 0), RATIOS_Q1, frozenset({"style", "movement_amplitude"})
            ),
        },
        max_prompt=1500,
    ),
)
BY_NAME = {m.name: m for m in MODELS}

# Options every endpoint takes (reelgate's names; Vidu's own in ``WIRE_NAMES``).
COMMON = frozenset({"resolution", "seed", "service_tier", "watermark", "wm_position", "wm_url"})
# reelgate's option name -> Vidu's field name, where they differ.
WIRE_NAMES = {"ratio": "aspect_ratio", "generate_audio": "audio", "service_tier": "off_peak"}
# Vidu's own names accepted in ``metadata`` too (canonicalised to reelgate's).
NATIVE_ALIASES = {"aspect_ratio": "ratio", "audio": "generate_audio", "off_peak": "service_tier"}
