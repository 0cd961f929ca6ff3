"""The video models reelgate offers on Replicate, and how a request becomes a prediction's
``input`` (no I/O).

From ``shared/spec/providers/replicate.md`` §4. Each entry maps a public model (the studio's
own id) to a Replicate official model (``owner/name``, created through
``POST /v1/models/{owner}/{name}/predictions``) and its input fields; a channel may pin a
version instead (``POST /v1/predictions`` with ``version``). The input schemas of Seedance and
Hailuo on Replicate are UNCONFIRMED in the spec: these follow the models' pages as the
simulator does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest, Option
from reelgate.providers.hosted import SEED, HostedModel, capabilities

NAME = "replicate"
_NEGATIVE = Option(str, "what the video should not show")


@dataclass(frozen=True)
class ReplicateModel:
    model: HostedModel
    # reelgate option → input field (options not listed keep their name).
    fields: Mapping[str, str] = field(default_factory=dict)
    image_field: str = "image"
    # The model makes one length only: no duration field is sent.
    fixed_duration: bool = False
    # Resolution names as the model spells them ("768P" → "768p").
    lowercase_resolution: bool = False

    @property
    def ref(self) -> str:
        return self.model.upstream


def _veo(name: str, ref: str, description: str) -> ReplicateModel:
    return ReplicateModel(
        HostedModel(
            name=name,
            description=f"{description} on Replicate (8 s)",
            upstream=ref,
            durations=(8,),
            default_duration=8,
            resolutions=("720p", "1080p"),
            default_resolution="720p",
            ratios=("16:9", "9:16"),
            default_ratio="16:9",
            max_images=1,
            options={"seed": SEED, "negative_prompt": _NEGATIVE},
        ),
        fields={"ratio": "aspect_ratio"},
        fixed_duration=True,
    )


MODELS: tuple[ReplicateModel, ...] = (
    ReplicateModel(
        HostedModel(
            name="doubao-seedance-1-0-pro-250528",
            description="Seedance 1.0 Pro (ByteDance) on Replicate",
            upstream="bytedance/seedance-1-pro",
            durations=tuple(range(2, 13)),
            default_duration=5,
            resolutions=("480p", "720p", "1080p"),
            default_resolution="1080p",
            ratios=("21:9", "16:9", "4:3", "1:1", "3:4", "9:16"),
            default_ratio="16:9",
            max_images=1,
            options={"seed": SEED, "camera_fixed": Option(bool, "keep the camera still")},
        ),
        fields={"ratio": "aspect_ratio"},
    ),
    ReplicateModel(
        HostedModel(
            name="kling-v2-1-master",
            description="Kling 2.1 Master (Kuaishou) on Replicate",
            upstream="kwaivgi/kling-v2.1-master",
            durations=(5, 10),
            default_duration=5,
            fixed_resolution="1080p",
            ratios=("16:9", "9:16", "1:1"),
            default_ratio="16:9",
            max_images=1,
            options={"negative_prompt": _NEGATIVE},
        ),
        fields={"ratio": "aspect_ratio"},
        image_field="start_image",
    ),
    _veo("veo-3.0-generate-001", "google/veo-3", "Veo 3 (Google)"),
    _veo("veo-3.0-fast-generate-001", "google/veo-3-fast", "Veo 3 Fast (Google)"),
    ReplicateModel(
        HostedModel(
            name="MiniMax-Hailuo-02",
            description="Hailuo 02 (MiniMax) on Replicate",
            upstream="minimax/hailuo-02",
            durations=(6, 10),
            default_duration=6,
            resolutions=("768P", "1080P"),
            default_resolution="768P",
            max_images=1,
            options={"prompt_optimizer": Option(bool, "let the model rewrite the prompt")},
            durations_by_resolution={"1080P": (6,)},
        ),
        image_field="first_frame_image",
        lowercase_resolution=True,
    ),
)
BY_NAME = {m.model.name: m for m in MODELS}


def catalogue() -> list[ModelCapabilities]:
    return [capabilities(m.model, NAME) for m in MODELS]


def prediction_input(request: NormalizedRequest) -> dict[str, Any]:
    """A prediction's ``input`` for a normalized request."""
    m = BY_NAME[request.model]
    body: dict[str, Any] = {"prompt": request.prompt}
    if not m.fixed_duration:
        body["duration"] = request.duration
    for name, value in request.options.items():
        if name == "image_mode":
            continue
        if name == "resolution" and m.lowercase_resolution:
            value = str(value).lower()
        body[m.fields.get(name, name)] = value
    if request.images:
        body[m.image_field] = request.images[0]
    return body


__all__ = ["BY_NAME", "MODELS", "ReplicateModel", "catalogue", "prediction_input"]
