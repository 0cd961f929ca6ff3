"""fal.ai's queue: Seedance, Kling, Veo, Hailuo and Wan as fal hosts them (their studios' APIs
are the models' homes; fal is the second home to fail over to).

A channel is one fal key (``Authorization: Key …``; ``key_id:key_secret`` works as one string)
and the queue's base URL (``https://queue.fal.run``). Options: ``timeout`` and ``jwks_url``,
where fal publishes the keys its webhooks are signed with (a simulator serves its own).
``max_in_flight`` defaults to 2, a new fal account's concurrency; raise it to the account's
(up to 40) and the rest of the work waits in reelgate's queue, where it may still go elsewhere.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.channels import Channel
from reelgate.providers.base import BuildContext, Credential, Features, Provider, ProviderSpec
from reelgate.providers.fal import models
from reelgate.providers.fal.provider import DEFAULT_CAPS, QUEUE_URL, FalProvider
from reelgate.providers.fal.webhooks import JWKS_URL

NAME = models.NAME


class FalOptions(BaseModel):
    """What a fal channel may set besides its key and base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(
        None, gt=0, le=600, description="Per-request timeout (s); default REELGATE_ARK_TIMEOUT"
    )
    jwks_url: str = Field(
        JWKS_URL,
        min_length=8,
        max_length=2000,
        pattern=r"^https?://",
        description="Where fal's webhook signing keys are published (JWKS)",
    )


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, FalOptions)
    return FalProvider(
        secret,
        base_url=SPEC.base_url(channel),
        jwks_url=options.jwks_url,
        timeout_s=options.timeout or ctx.timeout_s,
        channel=channel.name,
        caps=channel.caps,
        clock=ctx.clock or time.time,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="fal.ai (Seedance, Kling, Veo, Hailuo, Wan)",
    catalogue=models.catalogue,
    build=_build,
    credential=Credential("a fal API key"),
    options=FalOptions,
    regions={"global": QUEUE_URL},
    default_region="global",
    default_caps=DEFAULT_CAPS,
    features=Features(
        batch_size=1, callbacks="signed", cancel="queued", upstream_deadline=True, reconcile=False
    ),
    simulator="reelgate.testing.fal_simulator:ENTRY",
    contract="reelgate.testing.fal_target:TARGET",
    setup_hint="add a fal channel (reelgate channel add NAME --provider fal) to enable "
    "models hosted on fal",
)

__all__ = ["SPEC", "FalOptions", "FalProvider"]
