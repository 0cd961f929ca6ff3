"""Assembly: settings → store, channels, service and engine, for ``reelgate serve`` (through the
HTTP app's lifespan) and ``reelgate worker`` alike.

Every object gets its collaborators in its constructor. The providers come from their
declarations (``providers.plugins``): built-in channels (the sandbox), channels from settings
(``REELGATE_CHANNELS`` and each provider's own shorthand, e.g. ``REELGATE_ARK_*``) and channels
added at run time (in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reelgate.api.media import MediaLinks
from reelgate.api.seed import task_data
from reelgate.core import schedule
from reelgate.core.channels import AdmissionCaps, Channel
from reelgate.core.crypto import SecretBox
from reelgate.core.errors import ConfigError, ReelgateError
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.mirror import MediaMirror
from reelgate.engine.notify import PgListener, plain_dsn
from reelgate.engine.supervisor import supervise
from reelgate.engine.webhooks import WebhookSender
from reelgate.engine.worker import Worker
from reelgate.files import LocalFiles, MediaFiles, MediaRoots, S3Files
from reelgate.metrics import StateGauges
from reelgate.net import Network
from reelgate.providers import plugins
from reelgate.providers.base import BuildContext, ChannelDeclaration, Provider, ProviderSpec
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.service.channels import ChannelBook
from reelgate.service.stats import read_state
from reelgate.settings import Settings
from reelgate.store.base import RateBuckets, Store
from reelgate.store.redis_buckets import RedisBuckets
from reelgate.store.sql import SqlStore, async_url, open_store


@dataclass
class Runtime:
    """Everything a running gateway holds, built at start-up and closed at shutdown."""

    settings: Settings
    store: SqlStore
    service: VideoService
    links: MediaLinks
    callbacks: CallbackUrls
    channels: ChannelBook
    channels_task: asyncio.Task[None] | None = None
    gauges_task: asyncio.Task[None] | None = None
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None
    listener: PgListener | None = None
    sender_task: asyncio.Task[None] | None = None
    mirror_task: asyncio.Task[None] | None = None

    @property
    def registry(self) -> Registry:
        return self.channels.registry

    async def close(self) -> None:
        if self.worker_task is not None and self.stop is not None:
            self.stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker_task
            for task in (self.sender_task, self.mirror_task):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if self.listener is not None:
            await self.listener.stop()
        await StateGauges.stop(self.gauges_task)
        if self.channels_task is not None:
            self.channels_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.channels_task
        if isinstance(self.service.buckets, RedisBuckets):
            await self.service.buckets.close()
        await self.channels.close()
        await self.store.close()


def allowed_networks(settings: Settings) -> list[Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.allow_private_networks]


def build_context(settings: Settings, clock: Callable[[], float] | None = None) -> BuildContext:
    return BuildContext(
        data_dir=settings.data_dir,
        allow_networks=tuple(allowed_networks(settings)),
        clock=clock,
        timeout_s=settings.ark_timeout,
    )


async def secret_key(settings: Settings, store: SqlStore) -> bytes:
    """The configured key, or one generated on first start and shared through the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return (await store.get_or_set_meta("secret_key", secrets.token_urlsafe(32))).encode()


def secret_box(settings: Settings) -> SecretBox | None:
    """What seals secrets kept in the database, when ``REELGATE_ENCRYPTION_KEY`` is set."""
    key = settings.encryption_key
    return SecretBox(key.get_secret_value()) if key else None


def configured_channels(
    settings: Settings, specs: Mapping[str, ProviderSpec]
) -> list[ChannelDeclaration]:
    """The channels settings define: each provider's own shorthand, then ``REELGATE_CHANNELS``
    (a provider's default caps for the caps an entry leaves unset)."""
    found: list[ChannelDeclaration] = []
    for spec in specs.values():
        if spec.from_settings is not None:
            found.extend(spec.from_settings(settings))
    for entry in settings.channels:
        found_spec = specs.get(entry.provider)
        if found_spec is None:
            raise ConfigError(
                f"invalid setting REELGATE_CHANNELS: channel '{entry.name}' names an unknown "
                f"provider '{entry.provider}' (known: {', '.join(sorted(specs))})"
            )
        given = entry.model_fields_set
        defaults = found_spec.default_caps
        caps = AdmissionCaps(
            entry.max_queued if "max_queued" in given else defaults.max_queued,
            entry.max_in_flight if "max_in_flight" in given else defaults.max_in_flight,
            entry.rpm if "rpm" in given else defaults.rpm,
        )
        found.append(
            ChannelDeclaration(
                Channel(
                    name=entry.name,
                    provider=entry.provider,
                    region=entry.region,
                    base_url=entry.base_url,
                    priority=entry.priority,
                    weight=entry.weight,
                    models=tuple(entry.models) if entry.models is not None else None,
                    caps=caps,
                    options=entry.options,
                ),
                entry.secret.get_secret_value(),
            )
        )
    names = [d.channel.name for d in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"invalid settings: two channels are named '{duplicate}'")
    return found


def builtin_providers(
    settings: Settings, specs: Mapping[str, ProviderSpec], context: BuildContext
) -> list[Provider]:
    """The instances that need no channel row (the sandbox, when enabled)."""
    return [
        provider
        for spec in specs.values()
        if spec.builtin is not None and (provider := spec.builtin(settings, context)) is not None
    ]


def channel_book(
    settings: Settings,
    store: Store,
    builtin: Sequence[Provider] = (),
    clock: Callable[[], float] = time.time,
    box: SecretBox | None = None,
    specs: Mapping[str, ProviderSpec] | None = None,
) -> ChannelBook:
    """The channels of this gateway: built in, from settings, and added at run time."""
    specs = plugins.specs() if specs is None else specs
    return ChannelBook(
        store,
        specs=specs,
        builtin=builtin,
        configured=configured_channels(settings, specs),
        context=build_context(settings, clock),
        aliases=settings.model_aliases,
        box=box or secret_box(settings),
        clock=clock,
        refresh_s=settings.channel_refresh_seconds,
        probe_interval_s=settings.channel_probe_seconds,
    )


def media_storage(settings: Settings) -> MediaFiles:
    """Where durable copies go: the configured S3-compatible bucket, else the data directory."""
    if not settings.media_s3_url:
        return LocalFiles(settings.data_dir / "mirror")
    key = settings.media_s3_access_key_id
    secret = settings.media_s3_secret_access_key
    return S3Files(
        settings.media_s3_url,
        endpoint=settings.media_s3_endpoint,
        region=settings.media_s3_region,
        access_key_id=key.get_secret_value() if key else None,
        secret_access_key=secret.get_secret_value() if secret else None,
    )


async def rate_buckets(settings: Settings, store: Store) -> RateBuckets:
    """Where rate limits are counted: Redis when configured (checked now), else the database."""
    if settings.redis_url is None:
        return store
    buckets = RedisBuckets(settings.redis_url.get_secret_value())
    try:
        await buckets.ping()
    except ReelgateError:
        await buckets.close()
        raise
    return buckets


def media_roots(providers: Sequence[Provider]) -> dict[str, Path | MediaFiles]:
    """The local file roots of providers that serve their own files (``local://NAME/…``)."""
    roots: dict[str, Path | MediaFiles] = {}
    for provider in providers:
        root = getattr(provider, "media_root", None)
        if isinstance(root, Path):
            roots[provider.name] = root
    return roots


async def start_runtime(
    settings: Settings,
    *,
    run_worker: bool,
    clock: Callable[[], float] = time.time,
    clock_rate: float = 1.0,
) -> Runtime:
    """Open the database (migrated), build the channels, the service and, with ``run_worker``,
    the engine's loops (worker, webhook sender, media mirror), and start them."""
    box = secret_box(settings)
    # Webhook signing secrets are sealed at rest with the same key as upstream keys.
    store = await open_store(
        settings.database_url,
        secret_box=box,
        connect_timeout=settings.database_connect_timeout,
        statement_timeout=settings.database_statement_timeout,
    )
    async with contextlib.AsyncExitStack() as undo:
        undo.push_async_callback(store.close)
        await store.migrate()
        key = await secret_key(settings, store)
        specs = plugins.specs()
        context = build_context(settings, clock)
        builtin = builtin_providers(settings, specs, context)
        book = channel_book(settings, store, builtin, clock, box, specs)
        undo.push_async_callback(book.close)
        await book.start()
        buckets = await rate_buckets(settings, store)
        mirror_storage = media_storage(settings)
        # Where ``local://`` references point: links serve them, deletes remove them.
        roots = MediaRoots({**media_roots(builtin), "mirror": mirror_storage})
        service = VideoService(  # refuses a price table naming a model nobody serves
            store,
            channels=book,
            buckets=buckets,
            token_cache_ttl=settings.token_cache_ttl,
            task_cache_ttl=settings.task_cache_ttl,
            task_cache_size=settings.task_cache_size,
            allow_networks=context.allow_networks,
            max_task_seconds=settings.max_task_seconds,
            mirror_media=settings.media_mirror,
            media=roots,
            prices=settings.price_table,
            currency=settings.billing_currency,
            typical_seconds=settings.tracking_typical_seconds,
            clock=clock,
        )
        undo.pop_all()
    links = MediaLinks(
        key,
        settings.base_url,
        roots,
        ttl=settings.media_link_ttl,
        clock=clock,
        durable_fail_reason=settings.durable_fail_reason,
    )
    callbacks = CallbackUrls(key, settings.base_url)
    runtime = Runtime(settings, store, service, links, callbacks, book)
    runtime.channels_task = asyncio.create_task(supervise("channels", book.keep_fresh, clock=clock))
    gauges = StateGauges(
        lambda m: read_state(store, m, clock()), interval=settings.metrics_refresh_seconds
    )
    runtime.gauges_task = asyncio.create_task(gauges.run())
    if store.dialect == "postgresql":
        runtime.listener = PgListener(
            plain_dsn(async_url(settings.database_url)),
            on_task=service.remote_change,
            on_work=service.work_available.set,
        )
        runtime.listener.start()
    if run_worker:
        await _start_engine(runtime, mirror_storage, builtin, clock_rate)
    return runtime


async def _start_engine(
    runtime: Runtime,
    mirror_storage: MediaFiles,
    builtin: Sequence[Provider],
    clock_rate: float,
) -> None:
    settings, service, links = runtime.settings, runtime.service, runtime.links
    networks = allowed_networks(settings)
    worker = runtime.worker = Worker(
        service,
        queue=runtime.store,
        buckets=service.buckets,
        batch_size=settings.worker_batch_size,
        lease_seconds=settings.worker_lease_seconds,
        poll_interval=settings.worker_poll_interval,
        clock_rate=clock_rate,
        callbacks=runtime.callbacks if settings.callbacks_enabled else None,
        tracking=dataclasses.replace(
            schedule.TRACKING, default_typical=settings.tracking_typical_seconds
        ),
        # A built-in provider's timing may be known from its settings (the sandbox's).
        typical_defaults={
            p.name: typical
            for p in builtin
            if (typical := getattr(p, "typical_seconds", None)) is not None
        },
    )
    runtime.stop = asyncio.Event()
    await worker.announce()
    runtime.worker_task = asyncio.create_task(worker.run(runtime.stop))
    sender = WebhookSender(
        service,
        lambda task: task_data(task, links, None, service.estimate(task)),
        worker_id=worker.id,
        outbox=runtime.store,
        allow_networks=networks,
        retry_scale=settings.webhook_retry_scale,
    )
    runtime.sender_task = asyncio.create_task(sender.run(runtime.stop))
    mirror = MediaMirror(
        service,
        mirror_storage,
        worker_id=worker.id,
        outbox=runtime.store,
        retention_s=settings.media_retention_days * 86400,
        allow_networks=networks,
    )
    runtime.mirror_task = asyncio.create_task(mirror.run(runtime.stop))
