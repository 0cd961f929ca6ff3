"""The HTTP app: the surfaces over a running gateway (``reelgate.assembly``) as Starlette routes.

``create_app`` is what tests and embedders call; ``app_from_env`` is the factory granian and
uvicorn import in the server process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

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
from reelgate.api.edge import checked
from reelgate.api.errors import on_http_exception, on_reelgate_error, on_unexpected
from reelgate.api.events import TaskEvents
from reelgate.api.health import Readiness, healthz
from reelgate.api.hotpath import HotRoutes
from reelgate.api.openai import OpenAiSurface, unsupported_operation
from reelgate.api.openapi import OpenApi
from reelgate.api.seed import SeedSurface
from reelgate.api.webhooks import WebhookSurface
from reelgate.assembly import Runtime, start_runtime
from reelgate.core.errors import ReelgateError
from reelgate.engine.callbacks import ROUTE as CALLBACK_ROUTE
from reelgate.metrics import metrics_endpoint
from reelgate.settings import Settings, load_settings

log = logging.getLogger("reelgate")

# The Ark-native surface's base path (clients use base_url=".../api/v3").
ARK_TASKS = "/api/v3/contents/generations/tasks"
# The status GETs clients poll (answered by ``api.hotpath`` under ``reelgate serve``).
SEED_GET = "/v1/video/generations/{task_id}"
VIDEOS_GET = "/v1/videos/{video_id}"


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
        return checked(endpoint)  # canonical path segments and query parameters first

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
            HTTPException: on_http_exception(unsupported_operation),
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
