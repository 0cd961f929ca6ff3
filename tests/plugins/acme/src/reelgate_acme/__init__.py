"""Acme Video for reelgate: a made-up aggregator that hosts its own model (``acme-v1``) and
Seedance 1.0 Pro under its own id, with a smaller option set than Ark's.

A channel is one Acme key (``Authorization: Key …``) and the API's base URL; Acme has no
regions. Installing this package beside reelgate is all it takes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.capabilities import Mode, ModelCapabilities, Option
from reelgate.core.channels import AdmissionCaps, Channel
from reelgate.providers.base import BuildContext, Credential, Features, Provider, ProviderSpec
from reelgate_acme.provider import BATCH, AcmeProvider

NAME = "acme"
SEEDANCE_PRO = "doubao-seedance-1-0-pro-250528"

MODELS = (
    ModelCapabilities(
        name="acme-v1",
        provider=NAME,
        description="Acme's own text-to-video model",
        modes=frozenset({Mode.TEXT_TO_VIDEO}),
        min_duration=1,
        max_duration=8,
        default_duration=4,
        default_size=(1280, 720),
        options={"seed": Option(int, "random seed", minimum=0, maximum=2**31 - 1)},
    ),
    # Seedance 1.0 Pro as Acme serves it: text and a first frame, 2-10 s, no camera_fixed.
    ModelCapabilities(
        name=SEEDANCE_PRO,
        provider=NAME,
        description="Seedance 1.0 Pro on Acme",
        modes=frozenset({Mode.TEXT_TO_VIDEO, Mode.IMAGE_TO_VIDEO}),
        min_duration=2,
        max_duration=10,
        default_duration=5,
        default_size=(1920, 1088),
        max_side=1920,
        max_pixels=1920 * 1088,
        max_images=1,
        options={
            "resolution": Option(str, "output resolution", choices=("480p", "720p", "1080p")),
            "ratio": Option(str, "aspect ratio", choices=("16:9", "9:16", "1:1")),
            "seed": Option(int, "random seed", minimum=0, maximum=2**31 - 1),
        },
        upstream_model="bytedance/seedance-1.0-pro",
        home=False,
    ),
)


class AcmeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(30.0, gt=0, le=600, description="Per-request timeout (s)")


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, AcmeOptions)
    return AcmeProvider(
        secret,
        base_url=channel.base_url,
        models=MODELS,
        channel=channel.name,
        caps=channel.caps,
        timeout_s=options.timeout,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="Acme Video",
    catalogue=lambda: MODELS,
    build=_build,
    credential=Credential("an Acme API key"),
    options=AcmeOptions,
    default_caps=AdmissionCaps(max_in_flight=4),
    features=Features(batch_size=BATCH, callbacks="none", cancel="queued", reconcile=True),
    simulator="reelgate_acme.simulator:ENTRY",
    contract="reelgate_acme.target:TARGET",
)
