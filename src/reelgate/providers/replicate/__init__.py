"""Replicate's predictions: Seedance, Kling, Veo and Hailuo as Replicate hosts them (their
studios' APIs are the models' homes; Replicate is a second home to fail over to).

A channel is one Replicate API token (``Bearer r8_…``) and the API's base URL. Options:
``timeout``, and ``versions`` (public model → a version id, ``owner/name:<64 hex>`` or the
hash alone) to pin a version instead of the official model's latest.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.channels import Channel
from reelgate.providers.base import BuildContext, Credential, Features, Provider, ProviderSpec
from reelgate.providers.replicate import models
from reelgate.providers.replicate.provider import API_URL, ReplicateProvider

NAME = models.NAME


class ReplicateOptions(BaseModel):
    """What a Replicate channel may set besides its token and base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(
        None, gt=0, le=600, description="Per-request timeout (s); default REELGATE_ARK_TIMEOUT"
    )
    versions: dict[str, str] = Field(
        default_factory=dict,
        description="Public model → Replicate version to pin (else the official model's latest)",
    )


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, ReplicateOptions)
    return ReplicateProvider(
        secret,
        base_url=SPEC.base_url(channel),
        versions=options.versions,
        timeout_s=options.timeout or ctx.timeout_s,
        channel=channel.name,
        caps=channel.caps,
        clock=ctx.clock or time.time,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="Replicate (Seedance, Kling, Veo, Hailuo)",
    catalogue=models.catalogue,
    build=_build,
    credential=Credential("a Replicate API token"),
    options=ReplicateOptions,
    regions={"global": API_URL},
    default_region="global",
    features=Features(
        batch_size=1, callbacks="signed", cancel="any", upstream_deadline=True, reconcile=True
    ),
    simulator="reelgate.testing.replicate_simulator:ENTRY",
    contract="reelgate.testing.replicate_target:TARGET",
    setup_hint="add a Replicate channel (reelgate channel add NAME --provider replicate) to "
    "enable models hosted on Replicate",
)

__all__ = ["SPEC", "ReplicateOptions", "ReplicateProvider"]
