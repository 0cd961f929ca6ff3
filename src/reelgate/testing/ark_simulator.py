"""A wire-level simulator of Ark's video-generation task API (Volcengine / BytePlus), in memory:
the service's state and rules as ``shared/spec/ark-video-api.md`` documents them, and the counts
tests assert on. HTTP: ``ark_server``; models and options: ``ark_rules``; faults, time, scripted
outcomes, counts and serving: the shared base in ``reelgate.testing.simulator``.

Scripting: ``script(outcome)`` (or ``POST /_sim/script``) for the next tasks; prompt markers
``[sim:queued=S]``, ``[sim:running=S]`` (else ``durations(body)``, else
``queued_seconds``/``running_seconds``), ``[sim:fail=CODE]``, ``[sim:reject=CODE]`` (a 400 at
create), ``[sim:expire]``, ``[sim:status=TEXT]`` (an unknown status while running), which win
over a scripted outcome; faults by ``POST /_sim/faults {"endpoint","kind","count"}`` with endpoint
create|get|list|delete|lookup|any_read|any and kind 500|429|429-bare|reset|timeout|malformed|slow;
``GET /_sim/stats``, ``GET /_sim/tasks``, ``POST /_sim/reset``, ``POST /_sim/clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from reelgate.testing.ark_callbacks import CallbackSender
from reelgate.testing.ark_errors import ArkError
from reelgate.testing.ark_faults import injected_error
from reelgate.testing.ark_rules import check_body
from reelgate.testing.ark_server import SimulatorHandle, ark_routes, named_tasks, serve_in_thread
from reelgate.testing.simulator import Outcome, UpstreamSimulator

__all__ = ["ArkSimulator", "SimTask", "SimulatorHandle", "serve_in_thread"]

QUEUED_CAP = 120
WINDOW_S = 7 * 24 * 3600
URL_TTL_S = 24 * 3600
TERMINAL = ("succeeded", "failed", "expired")
_PIXELS = {"480p": (864, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
_MARK = re.compile(r"\[sim:(\w+)(?:=([^\]]*))?\]")
# What a scripted outcome looks like on Ark: (outcome, error code, status shown while running).
_SCRIPTED = {
    Outcome.SUCCESS: ("success", "", ""),
    Outcome.FAILURE: ("fail", "InternalServiceError", ""),
    Outcome.MODERATION: ("fail", "OutputVideoSensitiveContentDetected", ""),
    Outcome.EXPIRY: ("expire", "", ""),
    Outcome.UNKNOWN_STATUS: ("success", "", "suspended"),
}
_READS = frozenset({"get", "list"})


@dataclass
class SimTask:
    id: str
    key: str
    model: str
    body: dict[str, Any]
    created_at: float
    queued_s: float
    running_s: float
    outcome: str = "success"  # success | fail | expire
    fail_code: str = ""
    odd_status: str = ""
    cancelled: bool = False
    seq: int = 0  # creation order: breaks ties between equal created_at in lists


@dataclass
class ArkSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    callback_timeout_s: float = 5.0
    callback_retry_s: float = 5.0
    callback_interval_s: float = 0.05  # how often status changes are checked for callbacks
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    rpm: int | None = None  # requests per minute per API key; None: unlimited
    # Keys whose account is in arrears: every request answers 403 AccountOverdueError.
    overdue_keys: set[str] = field(default_factory=set)
    _recent: dict[str, list[float]] = field(default_factory=dict)
    tasks: dict[str, SimTask] = field(default_factory=dict)
    creates_by_prompt: Counter[str] = field(default_factory=Counter)
    creates_by_body: Counter[str] = field(default_factory=Counter)
    # (queued_s, running_s) for a create body, e.g. drawn from a distribution; prompt markers win.
    durations: Callable[[dict[str, Any]], tuple[float, float]] | None = None
    # Creates per safety_identifier (reelgate sets rg-<task id>): more than one is a double submit.
    creates_by_marker: Counter[str] = field(default_factory=Counter)
    # Times each task was answered by GET /tasks/{id} or in a list page.
    lookups_by_task: Counter[str] = field(default_factory=Counter)
    # The most GET/list requests naming one task that were in flight at the same moment.
    max_concurrent_lookups_per_task: int = field(default=0, init=False)
    # Tasks whose callback_url still has status changes to post (ark_callbacks prunes it).
    callback_watch: dict[str, SimTask] = field(default_factory=dict, init=False, repr=False)
    _in_flight: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    # Per API key, the tasks that may still be queued: the cap check only looks at these.
    _maybe_queued: dict[str, list[SimTask]] = field(default_factory=dict, init=False, repr=False)
    _serial: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    base_path: ClassVar[str] = "/api/v3"
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset({"create"}),
        "lookup": _READS,
        "any_read": _READS,
        "cancel": frozenset({"delete"}),
    }

    # -- time and status ----------------------------------------------------------------------
    def _elapsed(self, task: SimTask) -> float:
        return (self.now() - task.created_at) * self.time_scale

    def _ending(self, task: SimTask) -> tuple[float, str]:
        """When (elapsed seconds) and how the task ends, cancelling aside."""
        limit = float(task.body.get("execution_expires_after", 172800))
        if task.outcome == "expire":
            return min(task.queued_s, limit), "expired"
        done = task.queued_s + task.running_s
        if limit < done:
            return limit, "expired"  # sat queued/running past its execution_expires_after
        return done, "failed" if task.outcome == "fail" else "succeeded"

    def status(self, task: SimTask) -> str:
        if task.cancelled:
            return "cancelled"
        elapsed = self._elapsed(task)
        end, final = self._ending(task)
        if elapsed >= end:
            return final
        if elapsed < task.queued_s:
            return "queued"
        return task.odd_status or "running"

    def finished_at(self, task_id: str) -> float | None:
        """The ``now()`` time at which the task reaches (or reached) succeeded, failed or
        expired; None for a cancelled task or an id the simulator does not hold."""
        task = self.tasks.get(task_id)
        if task is None or task.cancelled:
            return None
        return task.created_at + self._ending(task)[0] / self.time_scale

    def view(self, task: SimTask) -> dict[str, Any]:
        status = self.status(task)
        body = task.body
        resolution = body.get("resolution", "720p")
        duration = int(body.get("duration", 5))
        width, height = _PIXELS.get(resolution, (1280, 720))
        frames = int(body["frames"]) if "frames" in body else 24 * max(duration, 1) + 1
        out: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": status,
            "error": None,
            "created_at": int(task.created_at),
            "updated_at": int(self.now()),
            "seed": int(body.get("seed", 12345)),
            "resolution": resolution,
            "ratio": body.get("ratio", "adaptive"),
            "duration": duration,
            "framespersecond": 24,
            "service_tier": body.get("service_tier", "default"),
            "execution_expires_after": int(body.get("execution_expires_after", 172800)),
        }
        if "safety_identifier" in body:
            out["safety_identifier"] = body["safety_identifier"]
        if status == "succeeded":
            tokens = width * height * frames // 1024
            out["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
            out["content"] = {"video_url": self._link(f"{task.id}.mp4")}
            if body.get("return_last_frame"):
                out["content"]["last_frame_url"] = self._link(f"{task.id}.png")
        elif status == "failed":
            out["error"] = {"code": task.fail_code, "message": "The request failed."}
        return out

    def _link(self, name: str) -> str:
        expires = int(self.now()) + URL_TTL_S
        sig = hashlib.sha256(f"{name}:{expires}".encode()).hexdigest()[:16]
        return f"{self.public_url}/tos/{name}?X-Tos-Expires={expires}&X-Tos-Signature={sig}"

    # -- the API ------------------------------------------------------------------------------
    def authorize(self, authorization: str) -> str:
        """The API key of an ``Authorization`` header, counted against the RPM limit."""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self.accepts(key):
            raise ArkError(401, "AuthenticationError", "The API key is invalid.")
        if key in self.overdue_keys:
            raise ArkError(
                403, "AccountOverdueError", "The account is overdue; top it up to continue."
            )
        if self.rpm is not None:
            now = self.now()
            recent = [t for t in self._recent.get(key, []) if now - t < 60]
            if len(recent) >= self.rpm:
                raise ArkError(
                    429,
                    "APIAccountRpmRateLimitExceeded",
                    f"The account's {self.rpm} requests per minute are used up.",
                )
            self._recent[key] = [*recent, now]
        return key

    def _new_id(self) -> str:
        """``cgt-<UTC time>-<random>``, as Ark's look; never one already handed out."""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.now()))
        while True:
            task_id = f"cgt-{stamp}-{secrets.token_hex(3)[:5]}"
            if task_id not in self.tasks:
                return task_id

    def create(self, key: str, body: Any) -> SimTask:
        if not isinstance(body, dict):
            raise ArkError(400, "InvalidParameter", "The request body is invalid.")
        body = {k: v for k, v in body.items() if v is not None}
        model, text = check_body(body)
        marks = {m.group(1): m.group(2) or "" for m in _MARK.finditer(text)}
        if "reject" in marks:
            raise ArkError(
                400,
                marks["reject"] or "InputTextSensitiveContentDetected",
                "The request failed because the input text may contain sensitive information.",
            )
        if self._queued_count(key) >= QUEUED_CAP:
            raise ArkError(429, "QuotaExceeded", "Too many queued tasks for this account.")
        queued_s, running_s = (
            self.durations(body)
            if self.durations is not None
            else (self.queued_seconds, self.running_seconds)
        )
        outcome, fail_code, odd_status = _SCRIPTED[self.next_outcome()]
        if "fail" in marks:
            outcome, fail_code = "fail", marks["fail"] or "OutputVideoSensitiveContentDetected"
        elif "expire" in marks:
            outcome = "expire"
        task = SimTask(
            id=self._new_id(),
            key=key,
            model=model,
            body=body,
            created_at=self.now(),
            queued_s=float(marks.get("queued") or queued_s),
            running_s=float(marks.get("running") or running_s),
            outcome=outcome,
            fail_code=fail_code,
            odd_status=marks.get("status", odd_status),
            seq=next(self._serial),
        )
        self.tasks[task.id] = task
        self.record_create()
        self._maybe_queued.setdefault(key, []).append(task)
        if isinstance(body.get("callback_url"), str):
            self.callback_watch[task.id] = task
        self.creates_by_prompt[_MARK.sub("", text).strip()] += 1
        self.creates_by_body[
            hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        ] += 1
        if "safety_identifier" in body:
            self.creates_by_marker[body["safety_identifier"]] += 1
        return task

    def _queued_count(self, key: str) -> int:
        # Once out of queued a task never returns (on a clock that does not run backwards), so
        # the candidates shrink to the queued ones: at most the cap, however many tasks exist.
        candidates = [
            t
            for t in self._maybe_queued.get(key, [])
            if self.tasks.get(t.id) is t and self.status(t) == "queued"
        ]
        self._maybe_queued[key] = candidates
        return len(candidates)

    def _find(self, key: str, task_id: str) -> SimTask:
        task = self.tasks.get(task_id)
        if task is None or task.key != key or self.now() - task.created_at > WINDOW_S:
            raise ArkError(404, "ResourceNotFound", f"The task {task_id} was not found.")
        return task

    def lookup(self, key: str, task_id: str) -> dict[str, Any]:
        """``GET /tasks/{id}``: the task object."""
        out = self.view(self._find(key, task_id))
        self.lookups_by_task[task_id] += 1
        return out

    def cancel(self, key: str, task_id: str) -> None:
        """``DELETE /tasks/{id}``: cancel a queued task, or delete a finished one's record."""
        task = self._find(key, task_id)
        status = self.status(task)
        if status == "queued":
            task.cancelled = True
        elif status in TERMINAL:
            del self.tasks[task.id]
        else:
            raise ArkError(400, "InvalidParameter", f"A {status} task cannot be cancelled.", "id")

    def list_tasks(
        self,
        key: str,
        *,
        ids: set[str],
        model: str | None,
        status: str | None,
        service_tier: str | None,
        page_size: int,
        page_num: int,
    ) -> dict[str, Any]:
        """``GET /tasks``: one page of the key's tasks of the last 7 days, newest first."""
        if not (1 <= page_size <= 500 and 1 <= page_num <= 500):
            raise ArkError(400, "InvalidParameter", "page_num and page_size are 1..500.")
        # With task ids, look those up instead of sorting every task: polls stay cheap at 100k.
        pool = [t for t in map(self.tasks.get, ids) if t] if ids else self.tasks.values()
        now = self.now()
        items = [
            self.view(t)
            for t in sorted(pool, key=lambda t: (-t.created_at, t.seq))
            if t.key == key and now - t.created_at <= WINDOW_S and model in (None, t.model)
        ]
        if status:
            items = [i for i in items if i["status"] == status]
        if service_tier:
            items = [i for i in items if i["service_tier"] == service_tier]
        start = (page_num - 1) * page_size
        page = items[start : start + page_size]
        self.lookups_by_task.update(i["id"] for i in page)
        return {"items": page, "total": len(items)}

    # -- accounting ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lookups_in_flight(self, task_ids: Collection[str]) -> Iterator[None]:
        """Count a request naming ``task_ids`` as in flight for the block (awaits included)."""
        for task_id in task_ids:
            self._in_flight[task_id] += 1
            self.max_concurrent_lookups_per_task = max(
                self.max_concurrent_lookups_per_task, self._in_flight[task_id]
            )
        try:
            yield
        finally:
            for task_id in task_ids:
                self._in_flight[task_id] -= 1
                if not self._in_flight[task_id]:
                    del self._in_flight[task_id]

    @property
    def max_creates_per_marker(self) -> int:
        return max(self.creates_by_marker.values(), default=0)

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "creates_by_prompt": dict(self.creates_by_prompt),
            "max_creates_per_body": max(self.creates_by_body.values(), default=0),
            "max_creates_per_marker": self.max_creates_per_marker,
            "lookups_total": self.lookups_by_task.total(),
            "max_lookups_per_task": max(self.lookups_by_task.values(), default=0),
            "max_concurrent_lookups_per_task": self.max_concurrent_lookups_per_task,
        }

    def task_rows(self) -> list[dict[str, Any]]:
        """Every task's timeline, for benchmarks: ``GET /_sim/tasks``."""
        return [
            {
                "id": t.id,
                "status": self.status(t),
                "created_at": t.created_at,
                "finished_at": self.finished_at(t.id),
                "marker": t.body.get("safety_identifier"),
            }
            for t in list(self.tasks.values())
        ]

    def reset(self) -> None:
        """Forget all tasks, faults and counts (requests in flight stay counted as such)."""
        super().reset()
        self.tasks.clear()
        self.creates_by_prompt.clear()
        self.creates_by_body.clear()
        self.creates_by_marker.clear()
        self.lookups_by_task.clear()
        self.max_concurrent_lookups_per_task = 0
        self.callback_watch.clear()
        self._maybe_queued.clear()

    # -- HTTP (the shared base serves it, with faults, counts and the /_sim routes) ----------
    def api_routes(self) -> list[BaseRoute]:
        return ark_routes(self)

    def injected_error(self, status: int) -> Response:
        return injected_error(status)

    def in_flight(self, endpoint: str, request: Request) -> contextlib.AbstractContextManager[None]:
        return self.lookups_in_flight(named_tasks(endpoint, request))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Post callbacks while served."""
        sender = asyncio.get_running_loop().create_task(
            CallbackSender(self, interval_s=self.callback_interval_s).run()
        )
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
