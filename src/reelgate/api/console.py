"""The web console at ``/console``: server-rendered pages that talk to reelgate's own API.

Sign-in keeps the API token in the tab's ``sessionStorage`` and the page's scripts send it as a
bearer header to the public routes (``/v1/video/generations…``, its event stream, ``/v1/admin/…``),
so the console holds no second way into the gateway: no session store, no cookie, hence no
CSRF to defend (another site cannot make the browser attach a header), and the token never
reaches an HTML page, a URL or a log. The price is that a script injected into the page could
read it: every page is served with a strict Content-Security-Policy (scripts only from here, no
inline code, no other origin at all) and the scripts only ever write text, never markup.

The pages themselves hold no user data. Two JSON routes add what the public API leaves out:
``/console/api/whoami`` (which console a token signs in to: the operator's or a token's own) and
``/console/api/tasks/{id}`` (the request as stored and the upstream id, for the task's token).
``<video>`` cannot send a bearer header, so the player uses the task's signed ``result_url``:
the same file ``/content`` serves, with Range support.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reelgate.api.edge import checked
from reelgate.api.errors import error_response
from reelgate.api.seed import bearer
from reelgate.core.errors import ReelgateError
from reelgate.core.lifecycle import Task
from reelgate.service import VideoService

PREFIX = "/console"
# Nothing outside this origin, no inline script or style: a token in sessionStorage is only as
# safe as the scripts that run beside it.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
# Task ids are ours ("task_" + url-safe characters); anything else is a 404 page, not a template.
_TASK_ID = re.compile(r"^task_[A-Za-z0-9_-]{1,64}$")
# Data URIs in a stored request can be megabytes: the console shows their type and size.
_DATA_URI = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),")

# (path, template, page title, who may see it: "user", "admin" or "any").
PAGES = (
    ("", "signin.html", "Sign in", "any"),
    ("/tasks", "tasks.html", "Tasks", "user"),
    ("/new", "new.html", "New video", "user"),
    ("/usage", "usage.html", "Usage", "any"),
    ("/tokens", "tokens.html", "Tokens", "admin"),
    ("/channels", "channels.html", "Channels", "admin"),
)


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reelgate", "console/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def summarize_ref(ref: str) -> str:
    """An image reference as the console shows it: URLs whole, data URIs as type and size."""
    match = _DATA_URI.match(ref)
    if match is None:
        return ref
    payload = len(ref) - match.end()
    size = payload * 3 // 4 if ";base64" in match.group(2) else payload
    return f"{match.group(1) or 'data'} data, {size:,} bytes"


def task_extra(task: Task) -> dict[str, Any]:
    """What the task page shows beyond the public answer, for the task's own token."""
    request = dict(task.request)
    if "images" in request:
        request["images"] = [summarize_ref(str(ref)) for ref in request["images"]]
    return {
        "task_id": task.id,
        "provider": task.provider,
        "upstream_id": task.upstream_id,
        "channel": task.channel,
        "request_id": task.request_id or None,
        "request": request,
        "callback_url": task.callback_url,
        "created_at": task.created_at,
        "submitted_at": task.submitted_at,
        "media_state": task.media_state or None,
    }


class Console:
    def __init__(self) -> None:
        self.env = _templates()

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        body = self.env.get_template(template).render(prefix=PREFIX, **context)
        return Response(
            body,
            status_code=status_code,
            media_type="text/html; charset=utf-8",
            headers=PAGE_HEADERS,
        )

    def page(self, template: str, title: str, audience: str) -> Callable[[Request], Any]:
        name = template.removesuffix(".html")

        async def endpoint(_request: Request) -> Response:
            return self.render(template, title=title, audience=audience, page=name)

        endpoint.__name__ = f"console_{name}"
        return endpoint

    async def task_page(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        if not _TASK_ID.match(task_id):
            return self.render(
                "missing.html", status_code=404, title="Not found", audience="any", page="missing"
            )
        return self.render("task.html", title="Task", audience="user", page="task", task_id=task_id)

    @staticmethod
    async def whoami(request: Request) -> Response:
        """Which console a bearer signs in to: the operator's (admin token) or a token's own."""
        runtime = request.app.state.runtime
        sent = bearer(request) or ""
        admin = runtime.settings.admin_token
        if admin is not None and hmac.compare_digest(
            sent.encode(), admin.get_secret_value().encode()
        ):
            return _json({"role": "admin"})
        try:
            owner = await runtime.service.authenticate(sent or None)
        except ReelgateError as exc:
            return error_response(exc)
        return _json({"role": "user", "name": owner.name})

    @staticmethod
    async def task_api(request: Request) -> Response:
        service: VideoService = request.app.state.runtime.service
        try:
            owner = await service.authenticate(bearer(request))
            task = await service.get(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        return _json(task_extra(task))


def _json(data: dict[str, Any]) -> Response:
    body = {"code": "success", "data": data}
    return Response(
        json.dumps(body).encode(),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def console_mount() -> Mount:
    """Everything under ``/console``, as one mount (the client API document does not list it)."""
    console = Console()
    routes: list[Route | Mount] = [
        Route(path or "/", console.page(template, title, audience), methods=["GET"])
        for path, template, title, audience in PAGES
    ]
    routes += [
        Route("/tasks/{task_id}", checked(console.task_page), methods=["GET"]),
        Route("/api/whoami", checked(console.whoami), methods=["GET"]),
        Route("/api/tasks/{task_id}", checked(console.task_api), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("reelgate", "console/static")]), name="static"),
    ]
    return Mount(PREFIX, routes=routes)
