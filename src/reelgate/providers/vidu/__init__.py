"""Vidu (Shengshu) through its enterprise API ``/ent/v2``: Q3, Q2, Q1, 2.0 and 1.5 models.

A channel is one Vidu API key (``Authorization: Token``) with a region (``global``:
api.vidu.com, ``cn``: api.vidu.cn) or a base URL. Vidu calls back on every status change with
an HMAC signature over the callback URL; a verified callback is still only a hint that a
look-up confirms. Vidu runs 5 tasks at once per organization by default (the channel's
``max_in_flight``); it queues the rest itself, and its ``429 QuotaExceeded`` cools the channel
down rather than failing the task.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.channels import Channel
from reelgate.providers.base import BuildContext, Credential, Features, Provider, ProviderSpec
from reelgate.providers.vidu import models as vidu_models
from reelgate.providers.vidu.provider import DEFAULT_CAPS, LIST_PAGE, REGIONS, ViduProvider

NAME = "vidu"


class ViduOptions(BaseModel):
    """What a Vidu channel may set besides its key, region and base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Per-request timeout (s); default the gateway's upstream timeout",
    )


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, ViduOptions)
    return ViduProvider(
        secret,
        base_url=SPEC.base_url(channel),
        timeout_s=options.timeout or ctx.timeout_s,
        channel=channel.name,
        caps=channel.caps,
        clock=ctx.clock,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="Vidu (Shengshu)",
    catalogue=vidu_models.capabilities,
    build=_build,
    credential=Credential("a Vidu API key"),
    options=ViduOptions,
    regions=REGIONS,
    default_region="global",
    default_caps=DEFAULT_CAPS,
    features=Features(
        batch_size=LIST_PAGE,
        callbacks="signed",
        cancel="queued",
        upstream_deadline=False,
        reconcile=True,
    ),
    simulator="reelgate.testing.vidu_simulator:ENTRY",
    contract="reelgate.testing.vidu_target:TARGET",
    setup_hint="add a Vidu channel (reelgate channel add NAME --provider vidu) to enable Vidu",
)

__all__ = ["SPEC", "ViduOptions", "ViduProvider"]
