"""Assembly: settings → store, providers, service, engine → a Starlette app with its surfaces.

``create_app`` is what tests and embedders call; ``app_from_env`` is the factory granian and
uvicorn import in the server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from reelgate import logs
from reelgate.api.admin import AdminSurface
from reelgate.api.admin_channels import ChannelAdmin
from reelgate.api.ark_native import ArkSurface
from reelgate.api.billing import BillingSurface
from reelgate.api.callbacks import CallbackSurface
from reelgate.api.console import console_mount
from reelgate.api.context import RequestObserver
from reelgate.api.errors import on_http_exception, on_reelgate_error, on_unexpected
from reelgate.api.events import TaskEvents
from reelgate.api.health import Readiness, healthz
from reelgate.api.hotpath import HotRoutes
from reelgate.api.media import MediaLinks
from reelgate.api.openai import OpenAiSurface
from reelgate.api.openapi import OpenApi
from reelgate.api.seed import SeedSurface, task_data
from reelgate.api.upstreams import channel_book, media_storage, secret_box
from reelgate.api.webhooks import WebhookSurface
from reelgate.core import schedule
from reelgate.core.errors import ReelgateError
from reelgate.engine.callbacks import ROUTE as CALLBACK_ROUTE
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.mirror import MediaMirror
from reelgate.engine.notify import PgListener, plain_dsn
from reelgate.engine.webhooks import WebhookSender
from reelgate.engine.worker import Worker
from reelgate.metrics import StateGauges, metrics_endpoint
from reelgate.net import Network
from reelgate.providers.base import Provider, Registry
from reelgate.providers.sandbox import SandboxProvider
from reelgate.service import VideoService
from reelgate.service.channels import ChannelBook
from reelgate.service.stats import read_state
from reelgate.settings import Settings, load_settings
from reelgate.storage import MediaStorage
from reelgate.store.redis_buckets import RedisBuckets
from reelgate.store.sql import SqlStore, async_url, open_store

log = logging.getLogger("reelgate")

# The Ark-native surface's base path (clients use base_url=".../api/v3").
ARK_TASKS = "/api/v3/contents/generations/tasks"
# The status GETs clients poll (answered by ``api.hotpath`` under ``reelgate serve``).
SEED_GET = "/v1/video/generations/{task_id}"
VIDEOS_GET = "/v1/videos/{video_id}"


@dataclass
class Runtime:
    """Everything a running gateway holds, built at start-up and closed at shutdown."""

    settings: Settings
    store: SqlStore
    registry: Registry
    service: VideoService
    links: MediaLinks
    callbacks: CallbackUrls
    channels: ChannelBook | None = None
    channels_task: asyncio.Task[None] | None = None
    gauges_task: asyncio.Task[None] | None = None
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None
    listener: PgListener | None = None
    sender_task: asyncio.Task[None] | None = None
    mirror_task: asyncio.Task[None] | None = None

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
        if self.channels is not None:
            await self.channels.close()
        else:
            await self.registry.close()
        await self.store.close()


def allowed_networks(settings: Settings) -> list[Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.allow_private_networks]


async def secret_key(settings: Settings, store: SqlStore) -> bytes:
    """The configured key, or one generated on first start and shared through the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return (await store.get_or_set_meta("secret_key", secrets.token_urlsafe(32))).encode()


async def start_runtime(
    settings: Settings,
    *,
    run_worker: bool,
    clock: Callable[[], float] = time.time,
    clock_rate: float = 1.0,
) -> Runtime:
    store = await open_store(settings.database_url)
    try:
        await store.migrate()
        key = await secret_key(settings, store)
    except ReelgateError:
        await store.close()
        raise
    networks = allowed_networks(settings)
    providers: list[Provider] = []
    roots: dict[str, Path | MediaStorage] = {}
    if settings.sandbox_enabled:
        sandbox = SandboxProvider(
            settings.data_dir,
            queue_seconds=settings.sandbox_queue_seconds,
            run_seconds=settings.sandbox_run_seconds,
            allow_networks=networks,
            clock=clock,
        )
        providers.append(sandbox)
        roots["sandbox"] = sandbox.media_root
    box = secret_box(settings)
    # Webhook signing secrets are sealed at rest with the same key as upstream keys.
    store.secret_box = box
    book = channel_book(settings, store, providers, clock, box)
    try:
        registry = await book.start()
        service = VideoService(  # refuses a price table naming a model nobody serves
            store,
            registry,
            token_cache_ttl=settings.token_cache_ttl,
            task_cache_ttl=settings.task_cache_ttl,
            task_cache_size=settings.task_cache_size,
            allow_networks=networks,
            max_task_seconds=settings.max_task_seconds,
            mirror_media=settings.media_mirror,
            prices=settings.price_table,
            currency=settings.billing_currency,
            clock=clock,
        )
    except ReelgateError:
        await book.close()
        await store.close()
        raise
    mirror_storage = roots["mirror"] = media_storage(settings)
    links = MediaLinks(
        key,
        settings.base_url,
        roots,
        ttl=settings.media_link_ttl,
        clock=clock,
        durable_fail_reason=settings.durable_fail_reason,
    )
    callbacks = CallbackUrls(key, settings.base_url)
    service.channels = book
    if settings.redis_url is not None:
        buckets = RedisBuckets(settings.redis_url.get_secret_value())
        try:
            await buckets.ping()
        except ReelgateError:
            await buckets.close()
            await book.close()
            await store.close()
            raise
        service.buckets = buckets
    runtime = Runtime(settings, store, registry, service, links, callbacks, book)
    book.on_change(lambda fresh: setattr(service, "registry", fresh))
    book.on_change(lambda fresh: setattr(runtime, "registry", fresh))
    runtime.channels_task = asyncio.create_task(book.keep_fresh())
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
        runtime.worker = Worker(
            service,
            batch_size=settings.worker_batch_size,
            lease_seconds=settings.worker_lease_seconds,
            poll_interval=settings.worker_poll_interval,
            clock_rate=clock_rate,
            callbacks=callbacks if settings.callbacks_enabled else None,
            tracking=dataclasses.replace(
                schedule.TRACKING, default_typical=settings.tracking_typical_seconds
            ),
            # The sandbox's timing is known: no need to learn it.
            typical_defaults={
                "sandbox": settings.sandbox_queue_seconds + settings.sandbox_run_seconds
            },
        )
        runtime.stop = asyncio.Event()
        await runtime.worker.announce()
        runtime.worker_task = asyncio.create_task(runtime.worker.run(runtime.stop))
        sender = WebhookSender(
            service,
            lambda task: task_data(task, links, None, service.estimate(task)),
            worker_id=runtime.worker.id,
            allow_networks=networks,
            retry_scale=settings.webhook_retry_scale,
        )
        runtime.sender_task = asyncio.create_task(sender.run(runtime.stop))
        mirror = MediaMirror(
            service,
            mirror_storage,
            worker_id=runtime.worker.id,
            retention_s=settings.media_retention_days * 86400,
            allow_networks=networks,
        )
        runtime.mirror_task = asyncio.create_task(mirror.run(runtime.stop))
    return runtime


def create_app(
    settings: Settings,
    *,
    run_worker: bool | None = None,
    clock: Callable[[], float] = time.time,
    clock_rate: float = 1.0,
) -> Starlette:
    """The ASGI app. Its lifespan opens the database, migrates it and starts the worker.

    ``clock`` is the time every part reads; ``clock_rate`` its seconds per wall second (other
    than 1 only where a benchmark compresses time), by which the worker converts the wait until
    a look falls due into wall time."""
    openapi = OpenApi()
    holder: dict[str, Runtime] = {}
    # The status GETs, answered below Starlette by the RSGI entry (``api.rsgi.gateway_from_env``).
    hot = HotRoutes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await start_runtime(
            settings,
            run_worker=settings.worker_enabled if run_worker is None else run_worker,
            clock=clock,
            clock_rate=clock_rate,
        )
        holder["runtime"] = runtime
        app.state.runtime = runtime
        seed = SeedSurface(runtime.service, runtime.links, settings.max_body_bytes)
        handlers["seed_get"] = seed.get
        hot.add(SEED_GET, seed.hot_get, seed.hot_wait)
        handlers["seed_create"] = seed.create
        handlers["seed_list"] = seed.list
        handlers["usage"] = seed.usage
        handlers["seed_content"] = seed.content
        handlers["seed_cancel"] = seed.cancel
        videos = OpenAiSurface(
            runtime.service, runtime.links, settings.max_body_bytes, settings.openai_default_model
        )
        handlers["videos_create"] = videos.create
        handlers["videos_list"] = videos.list
        handlers["videos_retrieve"] = videos.retrieve
        hot.add(VIDEOS_GET, videos.hot_get)
        handlers["videos_delete"] = videos.delete
        handlers["videos_content"] = videos.content
        handlers["videos_remix"] = videos.remix
        ark = ArkSurface(runtime.service, runtime.links, settings.max_body_bytes)
        handlers["ark_create"] = ark.create
        handlers["ark_list"] = ark.list
        handlers["ark_get"] = ark.get
        handlers["ark_delete"] = ark.delete
        admin_secret = settings.admin_token.get_secret_value() if settings.admin_token else None
        admin = AdminSurface(runtime.service, admin_secret)
        handlers["admin_tokens"] = admin.tokens
        handlers["admin_token"] = admin.token
        handlers["admin_usage"] = admin.usage
        # A worker beats every lease/3 seconds: three missed beats make it stale.
        ready = Readiness(runtime.store, stale_after=settings.worker_lease_seconds, clock=clock)
        handlers["readyz"] = ready.readyz
        handlers["admin_ledger"] = admin.ledger
        billing = BillingSurface(runtime.service, settings.max_body_bytes)
        handlers["quote"] = billing.quote
        handlers["balance"] = billing.balance
        if runtime.channels is not None:
            channels = ChannelAdmin(admin, runtime.channels)
            handlers["admin_channels"] = channels.collection
            handlers["admin_channel"] = channels.item
        hooks = WebhookSurface(runtime.service)
        handlers["webhook"] = hooks.endpoint
        handlers["webhook_rotate"] = hooks.rotate
        handlers["deliveries"] = hooks.deliveries
        handlers["replay"] = hooks.replay
        handlers["seed_events"] = TaskEvents(
            runtime.service, seed, keepalive=settings.sse_keepalive_seconds
        ).stream
        handlers["models"] = seed.models
        handlers["media"] = runtime.links.serve
        handlers["callback"] = CallbackSurface(runtime.service, runtime.callbacks).receive
        try:
            yield
        finally:
            await runtime.close()

    handlers: dict[str, Callable[[Request], object]] = {}

    def late(name: str) -> Callable[[Request], object]:
        # Routes are declared before start-up builds their handlers; bind them on first use.
        async def endpoint(request: Request) -> Response:
            response = await handlers[name](request)  # type: ignore[misc]
            assert isinstance(response, Response)
            return response

        endpoint.__name__ = name
        return endpoint

    routes = [
        Route(SEED_GET, late("seed_get"), methods=["GET"]),
        Route("/v1/video/generations", late("seed_create"), methods=["POST"]),
        Route("/v1/video/generations", late("seed_list"), methods=["GET"]),
        Route("/v1/video/generations/{task_id}/cancel", late("seed_cancel"), methods=["POST"]),
        Route(
            "/v1/video/generations/{task_id}/content",
            late("seed_content"),
            methods=["GET", "HEAD"],
        ),
        Route("/v1/video/generations/{task_id}/events", late("seed_events"), methods=["GET"]),
        Route("/v1/video/generations/{task_id}/deliveries", late("deliveries"), methods=["GET"]),
        Route(
            "/v1/video/generations/{task_id}/deliveries/{delivery_id}/replay",
            late("replay"),
            methods=["POST"],
        ),
        Route("/v1/webhook", late("webhook"), methods=["GET", "PUT", "DELETE"]),
        Route(ARK_TASKS, late("ark_create"), methods=["POST"]),
        Route(ARK_TASKS, late("ark_list"), methods=["GET"]),
        Route(ARK_TASKS + "/{task_id}", late("ark_get"), methods=["GET"]),
        Route(ARK_TASKS + "/{task_id}", late("ark_delete"), methods=["DELETE"]),
        Route("/v1/videos", late("videos_create"), methods=["POST"]),
        Route("/v1/videos", late("videos_list"), methods=["GET"]),
        Route(VIDEOS_GET, late("videos_retrieve"), methods=["GET"]),
        Route("/v1/videos/{video_id}", late("videos_delete"), methods=["DELETE"]),
        Route("/v1/videos/{video_id}/content", late("videos_content"), methods=["GET"]),
        Route("/v1/videos/{video_id}/remix", late("videos_remix"), methods=["POST"]),
        Route("/v1/webhook/rotate", late("webhook_rotate"), methods=["POST"]),
        Route("/v1/models", late("models"), methods=["GET"]),
        Route("/v1/usage", late("usage"), methods=["GET"]),
        Route("/v1/admin/tokens", late("admin_tokens"), methods=["GET", "POST"]),
        Route("/v1/admin/tokens/{ref}", late("admin_token"), methods=["PATCH"]),
        Route("/v1/admin/tokens/{ref}/{action}", late("admin_token"), methods=["POST"]),
        Route("/v1/admin/usage", late("admin_usage"), methods=["GET"]),
        Route("/v1/admin/ledger", late("admin_ledger"), methods=["GET"]),
        Route("/v1/video/generations/quote", late("quote"), methods=["POST"]),
        Route("/v1/balance", late("balance"), methods=["GET"]),
        Route("/v1/admin/channels", late("admin_channels"), methods=["GET", "POST"]),
        Route(
            "/v1/admin/channels/{name}", late("admin_channel"), methods=["GET", "PATCH", "DELETE"]
        ),
        Route("/v1/admin/channels/{name}/{action}", late("admin_channel"), methods=["POST"]),
        Route(CALLBACK_ROUTE, late("callback"), methods=["POST"]),
        Route("/v1/media/{root}/{name}", late("media"), methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", late("readyz"), methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi.spec, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
        Route("/docs/init.js", openapi.init_js, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path))),
        console_mount(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestObserver)],
        exception_handlers={
            HTTPException: on_http_exception,
            ReelgateError: on_reelgate_error,
            Exception: on_unexpected,
        },
    )
    app.state.hot_routes = hot
    return app


def app_from_env() -> Starlette:
    """Factory for ``granian --factory`` / ``uvicorn --factory``: settings from the environment."""
    settings = load_settings()
    logs.configure(settings)
    return create_app(settings)
