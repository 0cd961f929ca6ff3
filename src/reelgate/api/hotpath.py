"""The status GET, answered below Starlette when it can be.

Polling a task is most of what clients send. ``HotRoutes`` maps those routes (a plain ``GET`` of
one task, no query string, no ``Prefer: wait``) straight to their surface's ``hot_get``, which
finds the token and the task in the service's caches and renders the same answer the Starlette
route gives (both call one function), without awaiting anything. A handler answers None for
anything else (a token or task not cached, an error): the request then goes through the full
application, which reads the database and answers it as usual.

A route may also have a ``HotWaiter``: the long-poll (``?wait=``, ``Prefer: wait``) of a cached
token and task, awaited below Starlette too. Many clients may wait on one task, and all of them are
answered at the same moment when it changes: each answer must cost as little as a poll's.

The server entry (``api.rsgi``) asks ``HotRoutes`` first and gives each answer the same request
id and metrics as ``api.context.RequestObserver`` gives the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reelgate.metrics import METRICS, HttpStats, RouteStats

# (status, headers, body): what a hot handler answers.
Answer = tuple[int, list[tuple[str, str]], bytes]
# (Authorization header, If-None-Match header, task id) -> an answer, or None: not here.
# Synchronous: a hot answer comes from memory; anything that needs the database is not hot.
HotHandler = Callable[[str | None, str | None, str], Answer | None]
# The same and the seconds to wait -> an answer, or None (only before any waiting): not here.
HotWaiter = Callable[[str | None, str | None, str, float], Awaitable[Answer | None]]


class HotRoutes:
    def __init__(self, http: HttpStats = METRICS.http) -> None:
        self._http = http
        self._routes: list[tuple[str, str, HotHandler, HotWaiter | None, RouteStats]] = []

    def add(self, template: str, handler: HotHandler, waiter: HotWaiter | None = None) -> None:
        """``template``: a route whose last segment is the task id, e.g. ``/v1/videos/{id}``."""
        prefix, brace, rest = template.partition("{")
        if not brace or not prefix.endswith("/") or "/" in rest:
            raise ValueError(f"a hot route ends with its one parameter: {template!r}")
        # Replaces the template's handler (an application started again re-adds its routes).
        self._routes = [r for r in self._routes if r[1] != template]
        stats = self._http.route(template, "GET")
        self._routes.append((prefix, template, handler, waiter, stats))

    def match(self, path: str) -> tuple[RouteStats, HotHandler, str] | None:
        """(the route's metrics, handler, task id) for a hot route's path, else None."""
        found = self._find(path)
        return (found[0], found[1], found[3]) if found is not None else None

    def match_waiter(self, path: str) -> tuple[RouteStats, HotWaiter, str] | None:
        """(the route's metrics, long-poll handler, task id) for a route that has one."""
        found = self._find(path)
        if found is None or found[2] is None:
            return None
        return found[0], found[2], found[3]

    def _find(self, path: str) -> tuple[RouteStats, HotHandler, HotWaiter | None, str] | None:
        for prefix, _template, handler, waiter, stats in self._routes:
            if path.startswith(prefix):
                task_id = path[len(prefix) :]
                if task_id and "/" not in task_id:
                    return stats, handler, waiter, task_id
        return None
