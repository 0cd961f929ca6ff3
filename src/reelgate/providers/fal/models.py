"""The video models reelgate offers on fal, and how a request becomes a fal model input (no I/O).

From ``shared/spec/providers/fal.md`` §4 (fal-js's generated endpoint types). Each entry maps a
public model (the studio's own id: Seedance 1.0 Pro is ``doubao-seedance-1-0-pro-250528``, its
home is Ark) to fal endpoint ids and input fields. fal takes durations as strings (``"5"``, or
``"8s"`` for Veo) and the endpoint id in the submit path; status and result use only
``{owner}/{app}`` (see ``app_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest, Option
from reelgate.providers.hosted import SEED, HostedModel, capabilities

NAME = "fal"
NAMESPACES = ("workflows", "comfy")
_NEGATIVE = Option(str, "what the video should not show")
_AUDIO = Option(bool, "generate a soundtrack (default true)")
_RATIOS6 = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")


@dataclass(frozen=True)
class FalModel:
    model: HostedModel
    text_endpoint: str
    image_endpoint: str = ""
    # An endpoint per resolution (Hailuo 02: standard is 768P, pro 1080P), else the above.
    by_resolution: Mapping[str, str] = field(default_factory=dict)
    # reelgate option → fal input field (options not listed keep their name).
    fields: Mapping[str, str] = field(default_factory=dict)
    # The field that carries the duration, and its string's suffix; endpoints that make one
    # length only and take no duration.
    duration_field: str = "duration"
    fixed_duration: frozenset[str] = frozenset()
    duration_suffix: str = ""
    image_field: str = "image_url"


def _veo(name: str, endpoint: str, description: str, resolutions: tuple[str, ...]) -> FalModel:
    return FalModel(
        HostedModel(
            name=name,
            description=f"{description} on fal",
            upstream=endpoint,
            durations=(4, 6, 8),
            default_duration=8,
            resolutions=resolutions,
            default_resolution="720p",
            ratios=("16:9", "9:16"),
            default_ratio="16:9",
            max_images=1,
            options={"seed": SEED, "negative_prompt": _NEGATIVE, "generate_audio": _AUDIO},
        ),
        text_endpoint=endpoint,
        image_endpoint=f"{endpoint}/image-to-video",
        fields={"ratio": "aspect_ratio"},
        duration_suffix="s",
    )


MODELS: tuple[FalModel, ...] = (
    FalModel(
        HostedModel(
            name="doubao-seedance-1-0-pro-250528",
            description="Seedance 1.0 Pro (ByteDance) on fal",
            upstream="fal-ai/bytedance/seedance/v1/pro/text-to-video",
            durations=tuple(range(2, 13)),
            default_duration=5,
            resolutions=("480p", "720p", "1080p"),
            default_resolution="1080p",
            ratios=_RATIOS6,
            default_ratio="16:9",
            options={"seed": SEED, "camera_fixed": Option(bool, "keep the camera still")},
        ),
        text_endpoint="fal-ai/bytedance/seedance/v1/pro/text-to-video",
        fields={"ratio": "aspect_ratio"},
    ),
    FalModel(
        HostedModel(
            name="kling-v2-1-master",
            description="Kling 2.1 Master (Kuaishou) on fal",
            upstream="fal-ai/kling-video/v2.1/master/text-to-video",
            durations=(5, 10),
            default_duration=5,
            fixed_resolution="1080p",
            ratios=("16:9", "9:16", "1:1"),
            default_ratio="16:9",
            max_images=1,
            options={
                "negative_prompt": _NEGATIVE,
                "cfg_scale": Option(float, "prompt adherence", minimum=0, maximum=1),
            },
        ),
        text_endpoint="fal-ai/kling-video/v2.1/master/text-to-video",
        image_endpoint="fal-ai/kling-video/v2.1/master/image-to-video",
        fields={"ratio": "aspect_ratio"},
    ),
    _veo("veo-3.0-generate-001", "fal-ai/veo3", "Veo 3 (Google)", ("720p", "1080p")),
    _veo("veo-3.0-fast-generate-001", "fal-ai/veo3/fast", "Veo 3 Fast (Google)", ("720p", "1080p")),
    _veo("veo-3.1-generate-preview", "fal-ai/veo3.1", "Veo 3.1 (Google)", ("720p", "1080p", "4k")),
    FalModel(
        HostedModel(
            name="MiniMax-Hailuo-02",
            description="Hailuo 02 (MiniMax) on fal: standard (768P) or pro (1080P, 6 s)",
            upstream="fal-ai/minimax/hailuo-02/standard/text-to-video",
            durations=(6, 10),
            default_duration=6,
            resolutions=("768P", "1080P"),
            default_resolution="768P",
            options={"prompt_optimizer": Option(bool, "let the model rewrite the prompt")},
            durations_by_resolution={"1080P": (6,)},
        ),
        text_endpoint="fal-ai/minimax/hailuo-02/standard/text-to-video",
        by_resolution={
            "768P": "fal-ai/minimax/hailuo-02/standard/text-to-video",
            "1080P": "fal-ai/minimax/hailuo-02/pro/text-to-video",
        },
        fixed_duration=frozenset({"fal-ai/minimax/hailuo-02/pro/text-to-video"}),
    ),
    FalModel(
        HostedModel(
            name="wan2.5-t2v-preview",
            description="Wan 2.5 preview (Alibaba) on fal",
            upstream="fal-ai/wan-25-preview/text-to-video",
            durations=(5, 10),
            default_duration=5,
            resolutions=("480p", "720p", "1080p"),
            default_resolution="1080p",
            ratios=("16:9", "9:16", "1:1"),
            default_ratio="16:9",
            options={
                "seed": SEED,
                "negative_prompt": _NEGATIVE,
                "prompt_extend": Option(bool, "let the model expand the prompt"),
            },
        ),
        text_endpoint="fal-ai/wan-25-preview/text-to-video",
        fields={"ratio": "aspect_ratio", "prompt_extend": "enable_prompt_expansion"},
    ),
)
BY_NAME = {m.model.name: m for m in MODELS}
ENDPOINTS = frozenset(
    e for m in MODELS for e in (m.text_endpoint, m.image_endpoint, *m.by_resolution.values()) if e
)


def catalogue() -> list[ModelCapabilities]:
    return [capabilities(m.model, NAME) for m in MODELS]


def app_of(endpoint: str) -> str:
    """The ``{owner}/{app}`` (with its namespace) an endpoint's status and result live under:
    ``fal-ai/kling-video/v2.1/master/text-to-video`` → ``fal-ai/kling-video``."""
    parts = endpoint.split("/")
    keep = 3 if parts[0] in NAMESPACES else 2
    return "/".join(parts[:keep])


def endpoint_of(request: NormalizedRequest) -> str:
    m = BY_NAME[request.model]
    if m.by_resolution:
        return m.by_resolution[str(request.options.get("resolution"))]
    if request.images and m.image_endpoint:
        return m.image_endpoint
    return m.text_endpoint


def model_input(request: NormalizedRequest) -> dict[str, Any]:
    """fal's input object for a normalized request (the submit body; no envelope)."""
    m = BY_NAME[request.model]
    body: dict[str, Any] = {"prompt": request.prompt}
    if endpoint_of(request) not in m.fixed_duration:
        body[m.duration_field] = f"{request.duration}{m.duration_suffix}"
    for name, value in request.options.items():
        if name == "image_mode" or (name == "resolution" and m.by_resolution):
            continue
        body[m.fields.get(name, name)] = value
    if request.images:
        body[m.image_field] = request.images[0]
    return body


__all__ = ["BY_NAME", "ENDPOINTS", "MODELS", "FalModel", "app_of", "catalogue", "model_input"]
