"""Assembly from settings, outside the request path: the channels defined in settings, how each
provider's instances are made from a channel and its key, the box that seals stored secrets,
and where durable media copies go."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from reelgate.core.accounts import DEFAULT_ACCOUNT, AdmissionCaps
from reelgate.core.channels import Channel
from reelgate.core.crypto import SecretBox
from reelgate.providers import ark_catalog
from reelgate.providers.ark import REGIONS, ArkProvider
from reelgate.providers.base import Provider
from reelgate.service.channels import ChannelBook
from reelgate.settings import Settings
from reelgate.storage import LocalStorage, MediaStorage, S3Storage
from reelgate.store.base import Store


def ark_channels(settings: Settings) -> list[tuple[Channel, str]]:
    """The Ark accounts in settings, as channels with their keys: the default one (named
    ``default``), then ``ark_accounts`` in order."""
    found: list[tuple[Channel, str]] = []
    if settings.ark_api_key is not None:
        found.append(
            (
                Channel(
                    name=DEFAULT_ACCOUNT,
                    provider="ark",
                    region=settings.ark_region,
                    base_url=settings.ark_base_url,
                    priority=settings.ark_priority,
                    weight=settings.ark_weight,
                    caps=AdmissionCaps(
                        settings.ark_max_queued, settings.ark_max_in_flight, settings.ark_rpm
                    ),
                ),
                settings.ark_api_key.get_secret_value(),
            )
        )
    for extra in settings.ark_accounts:
        found.append(
            (
                Channel(
                    name=extra.name,
                    provider="ark",
                    region=extra.region,
                    base_url=extra.base_url,
                    priority=extra.priority,
                    weight=extra.weight,
                    models=tuple(extra.models) if extra.models is not None else None,
                    caps=AdmissionCaps(extra.max_queued, extra.max_in_flight, extra.rpm),
                ),
                extra.api_key.get_secret_value(),
            )
        )
    return found


def ark_factory(settings: Settings) -> Callable[[Channel, str], Provider]:
    def make(channel: Channel, api_key: str) -> Provider:
        return ArkProvider(
            api_key,
            base_url=channel.base_url or REGIONS.get(channel.region, REGIONS["cn-beijing"]),
            timeout_s=settings.ark_timeout,
            account=channel.name,
            caps=channel.caps,
        )

    return make


def channel_book(
    settings: Settings,
    store: Store,
    builtin: Sequence[Provider] = (),
    clock: Callable[[], float] = time.time,
    box: SecretBox | None = None,
) -> ChannelBook:
    """The channels of this gateway: from settings, and added at run time (in the database)."""
    hint = (
        "set REELGATE_ARK_API_KEY, or add an Ark channel (reelgate channel add), to enable "
        "Doubao Seedance"
    )
    return ChannelBook(
        store,
        builtin=builtin,
        configured=ark_channels(settings),
        factories={"ark": ark_factory(settings)},
        unconfigured={"ark": {n: hint for m in ark_catalog.MODELS for n in (m.name, m.byteplus)}},
        aliases=settings.model_aliases,
        box=box or secret_box(settings),
        clock=clock,
        refresh_s=settings.channel_refresh_seconds,
        probe_interval_s=settings.channel_probe_seconds,
    )


def secret_box(settings: Settings) -> SecretBox | None:
    """What seals secrets kept in the database, when ``REELGATE_ENCRYPTION_KEY`` is set."""
    key = settings.encryption_key
    return SecretBox(key.get_secret_value()) if key else None


def media_storage(settings: Settings) -> MediaStorage:
    """Where durable copies go: the configured S3-compatible bucket, else the data directory."""
    if not settings.media_s3_url:
        return LocalStorage(settings.data_dir / "mirror")
    key = settings.media_s3_access_key_id
    secret = settings.media_s3_secret_access_key
    return S3Storage(
        settings.media_s3_url,
        endpoint=settings.media_s3_endpoint,
        region=settings.media_s3_region,
        access_key_id=key.get_secret_value() if key else None,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
