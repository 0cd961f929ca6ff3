"""The status GET, answered below Starlette when it can be.

Polling a task is most of what clients send. ``HotRoutes`` maps those routes (a plain ``GET`` of
one task, no query string, no ``Prefer: wait``) straight to their surface's ``hot_get``, which
finds the token and the task in the service's caches and renders the same answer the Starlette
route gives (both call one function), without awaiting anything. A handler answers None for
anything else (a token or task not cached, an error): the request then goes through the full
application, which reads the database and answers it as usual.

The server entry (``api.rsgi``) asks ``HotRoutes`` first and gives each answer the same request
id and metrics as ``api.context.RequestObserver`` gives the others.
"""

from __future__ import annotations

from collections.abc import Callable

from reelgate.metrics import METRICS, HttpStats, RouteStats

# (status, headers, body): what a hot handler answers.
Answer = tuple[int, list[tuple[str, str]], bytes]
# (Authorization header, If-None-Match header, task id) -> an answer, or None: not here.
# Synchronous: a hot answer comes from memory; anything that needs the database is not hot.
HotHandler = Callable[[str | None, str | None, str], Answer | None]


class HotRoutes:
    def __init__(self, http: HttpStats = METRICS.http) -> None:
        self._http = http
        self._routes: list[tuple[str, str, HotHandler, RouteStats]] = []

    def add(self, template: str, handler: HotHandler) -> None:
        """``template``: a route whose last segment is the task id, e.g. ``/v1/videos/{id}``."""
        prefix, brace, rest = template.partition("{")
        if not brace or not prefix.endswith("/") or "/" in rest:
            raise ValueError(f"a hot route ends with its one parameter: {template!r}")
        # Replaces the template's handler (an application started again re-adds its routes).
        self._routes = [r for r in self._routes if r[1] != template]
        self._routes.append((prefix, template, handler, self._http.route(template, "GET")))

    def match(self, path: str) -> tuple[RouteStats, HotHandler, str] | None:
        """(the route's metrics, handler, task id) for a hot route's path, else None."""
        for prefix, _template, handler, stats in self._routes:
            if path.startswith(prefix):
                task_id = path[len(prefix) :]
                if task_id and "/" not in task_id:
                    return stats, handler, task_id
        return None
