"""The sandbox: a local upstream that renders real MP4s, so reelgate works with no account.

Its one channel is built in (``REELGATE_SANDBOX_ENABLED``, on by default); it takes no
credential and has no simulator, since it is its own upstream.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from reelgate.core.channels import Channel
from reelgate.providers.base import BuildContext, Features, Provider, ProviderSpec
from reelgate.providers.sandbox.provider import MODELS, NAME, SandboxProvider
from reelgate.settings import Settings


def _build(channel: Channel, secret: str, options: BaseModel, ctx: BuildContext) -> Provider:
    raise ValueError("the sandbox has one built-in channel; it takes no others")


def _builtin(settings: Settings, ctx: BuildContext) -> Provider | None:
    if not settings.sandbox_enabled:
        return None
    return SandboxProvider(
        ctx.data_dir,
        queue_seconds=settings.sandbox_queue_seconds,
        run_seconds=settings.sandbox_run_seconds,
        allow_networks=ctx.allow_networks,
        clock=ctx.clock or time.time,
    )


SPEC = ProviderSpec(
    name=NAME,
    title="the local sandbox renderer",
    catalogue=lambda: MODELS,
    build=_build,
    features=Features(batch_size=500, callbacks="none", cancel="queued", reconcile=True),
    builtin=_builtin,
    contract="reelgate.testing.targets:SANDBOX",
    setup_hint="set REELGATE_SANDBOX_ENABLED=true",
)

__all__ = ["SPEC", "SandboxProvider"]
