"""Doubao Seedance on Volcengine Ark (China) and BytePlus ModelArk (international).

A channel is one Ark API key with a region (``cn-beijing`` or ``ap-southeast``) or a base URL.
``REELGATE_ARK_API_KEY`` (the channel ``default``) and ``REELGATE_ARK_ACCOUNTS`` are a
shorthand for Ark channels in settings, beside the generic ``REELGATE_CHANNELS``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.channels import DEFAULT_CHANNEL, AdmissionCaps, Channel
from reelgate.providers.ark import models as ark_models
from reelgate.providers.ark.provider import DEFAULT_CAPS, LIST_PAGE, REGIONS, ArkProvider
from reelgate.providers.base import (
    BuildContext,
    ChannelDeclaration,
    Credential,
    Features,
    Provider,
    ProviderSpec,
)
from reelgate.settings import Settings

NAME = "ark"


class ArkOptions(BaseModel):
    """What an Ark channel may set besides its key, region and base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(
        None, gt=0, le=600, description="Per-request timeout (s); default REELGATE_ARK_TIMEOUT"
    )


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, ArkOptions)
    return ArkProvider(
        secret,
        base_url=SPEC.base_url(channel),
        timeout_s=options.timeout or ctx.timeout_s,
        channel=channel.name,
        caps=channel.caps,
    )


def _from_settings(settings: Settings) -> list[ChannelDeclaration]:
    """The default channel (``REELGATE_ARK_API_KEY``), then ``REELGATE_ARK_ACCOUNTS`` in order."""
    found: list[ChannelDeclaration] = []
    timeout = {"timeout": settings.ark_timeout}
    if settings.ark_api_key is not None:
        found.append(
            ChannelDeclaration(
                Channel(
                    name=DEFAULT_CHANNEL,
                    provider=NAME,
                    region=settings.ark_region,
                    base_url=settings.ark_base_url,
                    priority=settings.ark_priority,
                    weight=settings.ark_weight,
                    caps=AdmissionCaps(
                        settings.ark_max_queued, settings.ark_max_in_flight, settings.ark_rpm
                    ),
                    options=timeout,
                ),
                settings.ark_api_key.get_secret_value(),
            )
        )
    for extra in settings.ark_accounts:
        found.append(
            ChannelDeclaration(
                Channel(
                    name=extra.name,
                    provider=NAME,
                    region=extra.region,
                    base_url=extra.base_url,
                    priority=extra.priority,
                    weight=extra.weight,
                    models=tuple(extra.models) if extra.models is not None else None,
                    caps=AdmissionCaps(extra.max_queued, extra.max_in_flight, extra.rpm),
                    options=timeout,
                ),
                extra.api_key.get_secret_value(),
            )
        )
    return found


SPEC = ProviderSpec(
    name=NAME,
    title="Doubao Seedance (Volcengine Ark / BytePlus ModelArk)",
    catalogue=ark_models.capabilities,
    build=_build,
    credential=Credential("an Ark API key"),
    options=ArkOptions,
    regions=REGIONS,
    default_region="cn-beijing",
    default_caps=DEFAULT_CAPS,
    features=Features(
        batch_size=LIST_PAGE,
        callbacks="unsigned",
        cancel="queued",
        upstream_deadline=True,
        reconcile=True,
    ),
    simulator="reelgate.testing.simulators:ARK_SIMULATOR",
    contract="reelgate.testing.targets:ARK",
    from_settings=_from_settings,
    setup_hint="set REELGATE_ARK_API_KEY, or add an Ark channel (reelgate channel add NAME "
    "--provider ark), to enable Doubao Seedance",
)

__all__ = ["SPEC", "ArkOptions", "ArkProvider"]
