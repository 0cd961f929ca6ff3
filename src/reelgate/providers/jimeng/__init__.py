"""Jimeng (即梦) video 3.0 through Volcengine's visual API, as new-api calls it.

A channel is one Volcengine key pair, its secret written ``ACCESS_KEY_ID:SECRET_ACCESS_KEY``;
every request is signed with Volcengine's HMAC-SHA256 scheme (region ``cn-north-1``, service
``cv``). The API has no list, no cancel and no callbacks: tasks are looked up one by one, and a
create whose answer was lost cannot be found again (``reconcile`` finds nothing). Facts and
their sources: ``docs/providers/jimeng.md``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reelgate.core.channels import Channel
from reelgate.providers.base import BuildContext, Credential, Features, Provider, ProviderSpec
from reelgate.providers.jimeng import models as jimeng_models
from reelgate.providers.jimeng.provider import REGIONS, JimengProvider, split_secret

NAME = "jimeng"


class JimengOptions(BaseModel):
    """What a Jimeng channel may set besides its key pair and base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float | None = Field(
        None, gt=0, le=600, description="Per-request timeout (s); default the gateway's"
    )


def _check(secret: str) -> None:
    split_secret(secret)


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    assert isinstance(options, JimengOptions)
    return JimengProvider(
        secret,
        base_url=SPEC.base_url(channel),
        timeout_s=options.timeout or ctx.timeout_s,
        channel=channel.name,
        caps=channel.caps,
        clock=ctx.clock,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="Jimeng video (Volcengine visual API)",
    catalogue=jimeng_models.capabilities,
    build=_build,
    credential=Credential("a Volcengine key pair ACCESS_KEY_ID:SECRET_ACCESS_KEY", check=_check),
    options=JimengOptions,
    regions=REGIONS,
    default_region="cn-north-1",
    features=Features(
        batch_size=1,
        callbacks="none",
        cancel="none",
        upstream_deadline=True,
        reconcile=False,
    ),
    simulator="reelgate.testing.jimeng_simulator:ENTRY",
    contract="reelgate.testing.jimeng_target:TARGET",
    setup_hint="add a Jimeng channel (reelgate channel add NAME --provider jimeng, secret "
    "ACCESS_KEY_ID:SECRET_ACCESS_KEY) to enable Jimeng",
)

__all__ = ["SPEC", "JimengOptions", "JimengProvider"]
