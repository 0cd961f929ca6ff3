"""Liveness and readiness for load balancers and Kubernetes probes.

``/healthz``: the process answers (no I/O). ``/readyz``: the database answers (on SQLite: its
file is still the one opened, with room, and takes a write), its schema is at the newest
migration, and a worker has reported within ``stale_after`` seconds (without one, tasks would be
accepted and never move) with none of this process's engine loops stopped or restarting again
and again (``engine.supervisor.LOOPS``). 200 with every check, or 503 naming the failing ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from reelgate.core.errors import ReelgateError
from reelgate.engine.supervisor import LOOPS, LoopHealth
from reelgate.store.base import Store


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


class Readiness:
    def __init__(
        self,
        store: Store,
        *,
        stale_after: float,
        clock: Callable[[], float],
        loops: LoopHealth = LOOPS,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self._clock = clock
        self.loops = loops

    async def checks(self) -> dict[str, str]:
        """Each check's result: "ok" or what is wrong."""
        try:
            await self.store.ping()
        except ReelgateError as exc:
            failed = f"unreachable: {exc.message}"
            return {"database": failed, "migrations": "unknown", "worker": "unknown"}
        out = {"database": "ok"}
        try:
            current = await self.store.schema_is_current()
            out["migrations"] = "ok" if current else "behind: restart a process to migrate"
            seen = await self.store.last_worker_seen()
        except ReelgateError as exc:
            return {**out, "migrations": f"unknown: {exc.message}", "worker": "unknown"}
        if seen is None:
            out["worker"] = "no worker has reported"
        else:
            age = self._clock() - seen
            out["worker"] = (
                "ok" if age <= self.stale_after else f"last seen {age:.0f} s ago (stale)"
            )
        problems = self.loops.problems(self._clock())
        if problems and out["worker"] == "ok":
            out["worker"] = "; ".join(problems)
        return out

    async def readyz(self, _request: Request) -> Response:
        checks = await self.checks()
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return Response(
            json.dumps(body).encode(),
            status_code=200 if ready else 503,
            media_type="application/json",
        )
