"""The OpenAPI document lists every client-facing route the app serves (it cannot drift)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from reelgate.api.app import create_app
from reelgate.api.openapi import build_document
from reelgate.settings import Settings

# Routes that are not part of the client API document.
INTERNAL = {
    "/v1/media/{root}/{name}",  # signed links, handed out in answers
    "/v1/callbacks/{provider}/{task_id}/{token}",  # upstreams call these
    "/openapi.json",
    "/docs",
    "/docs/init.js",
    # The admin API is for operators (documented in README "Token limits"), not clients.
    "/v1/admin/tokens",
    "/v1/admin/tokens/{ref}",
    "/v1/admin/tokens/{ref}/{action}",
    "/v1/admin/usage",
    "/v1/admin/ledger",
    "/v1/admin/channels",
    "/v1/admin/channels/{name}",
    "/v1/admin/channels/{name}/{action}",
    # Ark's own API, mirrored: documented by Ark (see README "Use it from your existing client")
    "/api/v3/contents/generations/tasks",
    "/api/v3/contents/generations/tasks/{task_id}",
}


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path))
    served: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Route) and route.path not in INTERNAL:
            served.setdefault(route.path, set()).update(
                m.lower() for m in (route.methods or ()) if m != "HEAD"
            )
    documented = {path: set(ops) for path, ops in build_document()["paths"].items()}
    assert served == documented
