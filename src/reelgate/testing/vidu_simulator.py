"""A wire-level simulator of Vidu's enterprise API ``/ent/v2`` (``shared/spec/providers/vidu.md``),
on reelgate's shared simulator base: ``Authorization: Token``, the four create endpoints with
their per-model rules (``vidu_rules``), ``GET /tasks/{id}/creations``, the list with
``task_ids`` and paging, cancel (queued tasks only), credits, Vidu's error bodies, the
organization's concurrency cap (5 by default: the rest wait in ``queueing``, in order; with
``queue_limit`` a create beyond it answers ``429 QuotaExceeded``), result URLs valid 24 h, and
signed callbacks (``vidu_callbacks``) with three retries of a final one. HTTP: ``vidu_server``.

Scripting: ``script(outcome)`` / ``POST /_sim/script``, or prompt markers ``[sim:queued=S]``,
``[sim:running=S]``, ``[sim:fail=CODE]``, ``[sim:reject=REASON]`` (a 400 at create),
``[sim:state=TEXT]`` (an unknown state while processing), which win.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.routing import BaseRoute

from reelgate.providers.vidu.catalog import SHORT_SIDE
from reelgate.providers.vidu.models import frame
from reelgate.testing.simulator import Outcome, UpstreamSimulator
from reelgate.testing.simulators import SimulatorEntry, SimulatorOptions
from reelgate.testing.vidu_rules import ENDPOINT_MODES, ViduError, check_body

__all__ = ["ENTRY", "ViduSimulator", "ViduTask"]

URL_TTL_S = 24 * 3600
WINDOW_S = 7 * 24 * 3600
_MARK = re.compile(r"\[sim:(\w+)(?:=([^\]]*))?\]")
# How a scripted outcome ends on Vidu: (ends failed?, err_code, state shown while processing).
_SCRIPTED = {
    Outcome.SUCCESS: (False, "", ""),
    Outcome.FAILURE: (True, "InternalServiceFailure", ""),
    Outcome.MODERATION: (True, "CreationPolicyViolation", ""),
    # Vidu has no expiry state (an unrun off-peak task's end is undocumented): a failure.
    Outcome.EXPIRY: (True, "InternalServiceFailure", ""),
    Outcome.UNKNOWN_STATUS: (False, "", "suspended"),
}
_CREDITS_PER_S = {"360p": 1, "540p": 2, "720p": 4, "1080p": 8}


@dataclass
class ViduTask:
    id: str
    key: str
    body: dict[str, Any]
    created_at: float  # the simulator's clock
    queued_s: float  # upstream seconds before it may start
    running_s: float
    fails: bool = False
    err_code: str = ""
    odd_state: str = ""
    cancelled_at: float | None = None
    seq: int = 0


@dataclass
class ViduSimulator(UpstreamSimulator):
    queued_seconds: float = 2.0
    running_seconds: float = 5.0
    concurrency: int = 5  # tasks processing at once per organization (key), the rest queue
    queue_limit: int | None = None  # tasks that may wait; beyond: 429 QuotaExceeded
    callback_timeout_s: float = 5.0
    callback_retry_s: float = 5.0
    callback_interval_s: float = 0.05
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, ViduTask] = field(default_factory=dict)
    creates_by_payload: Counter[str] = field(default_factory=Counter)
    lookups_by_task: Counter[str] = field(default_factory=Counter)
    # (queued_s, running_s) for a create body; prompt markers win.
    durations: Callable[[dict[str, Any]], tuple[float, float]] | None = None
    callback_watch: dict[str, ViduTask] = field(default_factory=dict, init=False, repr=False)
    _timelines: dict[str, dict[str, tuple[float, float]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _serial: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    base_path: ClassVar[str] = ""
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset(ENDPOINT_MODES),
        "lookup": frozenset({"get", "list"}),
        "cancel": frozenset({"cancel"}),
    }

    # -- time and state -----------------------------------------------------------------------
    def _up(self, t: float) -> float:
        """A time of the simulator's clock in upstream seconds (compressed by the time scale)."""
        return t * self.time_scale

    def timeline(self, task: ViduTask) -> tuple[float, float] | None:
        """(start, end) in upstream seconds; ``None`` for a task cancelled before it started.

        The organization runs ``concurrency`` tasks at once, in the order they were created;
        a task starts when its own wait is over and a slot is free."""
        cached = self._timelines.get(task.key)
        if cached is None:
            slots: list[float] = []
            cached = {}
            for t in sorted((t for t in self.tasks.values() if t.key == task.key), key=_seq):
                if t.cancelled_at is not None:
                    continue
                ready = self._up(t.created_at) + t.queued_s
                start = ready if len(slots) < self.concurrency else max(ready, heapq.heappop(slots))
                heapq.heappush(slots, start + t.running_s)
                cached[t.id] = (start, start + t.running_s)
            self._timelines[task.key] = cached
        return cached.get(task.id)

    def state(self, task: ViduTask) -> str:
        if task.cancelled_at is not None:
            return "failed"
        now = self._up(self.now())
        start, end = self.timeline(task) or (now, now)
        if now >= end:
            return "failed" if task.fails else "success"
        if now >= start:
            return task.odd_state or "processing"
        return "created" if now - self._up(task.created_at) < 1.0 else "queueing"

    def finished_at(self, task_id: str) -> float | None:
        """The simulator-clock time the task ends (or ended); None if cancelled or unknown."""
        task = self.tasks.get(task_id)
        span = self.timeline(task) if task is not None else None
        return None if span is None else span[1] / self.time_scale

    def err_code(self, task: ViduTask) -> str:
        if task.cancelled_at is not None:
            return "UserCancelled"
        return task.err_code if self.state(task) == "failed" else ""

    def credits(self, task: ViduTask) -> int:
        if self.state(task) == "failed":
            return 0
        body = task.body
        per_s = _CREDITS_PER_S.get(str(body.get("resolution")), 4)
        total = per_s * int(body.get("duration") or 5)
        total = total // 2 if body.get("off_peak") else total
        return total + (10 if body.get("is_rec") else 0)

    # -- the API ------------------------------------------------------------------------------
    def create(self, key: str, endpoint: str, body: Any) -> ViduTask:
        model = check_body(endpoint, body)
        text = str(body.get("prompt") or "")
        marks = {m.group(1): m.group(2) or "" for m in _MARK.finditer(text)}
        if "reject" in marks:
            raise ViduError(
                400, marks["reject"] or "TaskPromptPolicyViolation", "prompt policy violation"
            )
        if self.queue_limit is not None and self._waiting(key) >= self.queue_limit:
            raise ViduError(429, "QuotaExceeded", "quota exceeded")
        queued_s, running_s = (
            self.durations(body) if self.durations else (self.queued_seconds, self.running_seconds)
        )
        fails, err_code, odd = _SCRIPTED[self.next_outcome()]
        if "fail" in marks:
            fails, err_code = True, marks["fail"] or "InternalServiceFailure"
        task = ViduTask(
            id=str(secrets.randbelow(9 * 10**17) + 10**17),
            key=key,
            body={**body, "model": model.name},
            created_at=self.now(),
            queued_s=float(marks.get("queued") or queued_s),
            running_s=float(marks.get("running") or running_s),
            fails=fails,
            err_code=err_code,
            odd_state=marks.get("state", odd),
            seq=next(self._serial),
        )
        if not task.body.get("seed"):
            task.body["seed"] = secrets.randbelow(2**31 - 1) + 1
        self.tasks[task.id] = task
        self._timelines.pop(key, None)
        self.record_create()
        self.creates_by_payload[str(body.get("payload", ""))] += 1
        if body.get("callback_url"):
            self.callback_watch[task.id] = task
        return task

    def _waiting(self, key: str) -> int:
        return sum(
            1
            for t in self.tasks.values()
            if t.key == key and self.state(t) in ("created", "queueing")
        )

    def find(self, key: str, task_id: str) -> ViduTask:
        task = self.tasks.get(task_id)
        if task is None or task.key != key:
            raise ViduError(404, "TaskNotFound", "task not found")
        return task

    def cancel(self, key: str, task_id: str) -> None:
        task = self.find(key, task_id)
        state = self.state(task)
        if state not in ("created", "queueing"):
            shown = "scheduled" if state not in ("success", "failed") else state
            raise ViduError(400, "BadRequest", f"task state is {shown}, can not cancel")
        task.cancelled_at = self.now()
        self._timelines.pop(key, None)

    def list_tasks(self, key: str, query: Mapping[str, Any]) -> dict[str, Any]:
        ids = set(query.get("task_ids") or ())
        states = set(query.get("states") or ())
        since = query.get("from")
        until = query.get("to")
        page, size = int(query.get("page", 0)), int(query.get("pagesz", 10))
        if not 1 <= size <= 100:
            raise ViduError(400, "PageSizeOutOfRange", "page size out of range")
        now = self.now()
        low = since if since is not None else now - WINDOW_S
        pool = [self.tasks[i] for i in ids if i in self.tasks] if ids else list(self.tasks.values())
        chosen = [
            t
            for t in sorted(pool, key=lambda t: (-t.created_at, -t.seq))
            if t.key == key
            and low <= t.created_at <= (until if until is not None else now)
            and (not states or self.state(t) in states)
        ]
        window = chosen[page * size : (page + 1) * size]
        self.lookups_by_task.update(t.id for t in window)
        more = (page + 1) * size < len(chosen)
        return {
            "tasks": [self.list_item(t) for t in window],
            "next_page_token": f"p{page + 1}" if more else "",
        }

    # -- views --------------------------------------------------------------------------------
    def creations(self, task: ViduTask) -> list[dict[str, Any]]:
        if self.state(task) != "success":
            return []
        expires = int(self.now()) + URL_TTL_S
        item = {
            "id": f"{task.id}01",
            "url": f"{self.public_url}/files/{task.id}.mp4?expires={expires}",
            "cover_url": f"{self.public_url}/files/{task.id}.png?expires={expires}",
        }
        if task.body.get("watermark"):
            item["watermarked_url"] = f"{self.public_url}/files/{task.id}-wm.mp4?expires={expires}"
        return [item]

    def view(self, task: ViduTask) -> dict[str, Any]:
        """``GET /tasks/{id}/creations`` (and a callback's body)."""
        return {
            "id": task.id,
            "state": self.state(task),
            "err_code": self.err_code(task),
            "credits": self.credits(task),
            "payload": task.body.get("payload", ""),
            "bgm": bool(task.body.get("bgm", False)),
            "off_peak": bool(task.body.get("off_peak", False)),
            "creations": self.creations(task),
        }

    def list_item(self, task: ViduTask) -> dict[str, Any]:
        body = task.body
        resolution = str(body.get("resolution") or "720p")
        width, height = frame(
            resolution if resolution in SHORT_SIDE else "720p",
            str(body.get("aspect_ratio") or "16:9"),
        )
        creations = self.creations(task)
        for item in creations:
            item["video"] = {
                "duration": float(body.get("duration") or 5),
                "fps": 24,
                "resolution": {"width": width, "height": height},
            }
        return {
            **{k: v for k, v in self.view(task).items() if k != "creations"},
            "key_id": f"key-{abs(hash(task.key)) % 10**6}",
            "model": body.get("model"),
            "prompt": body.get("prompt", ""),
            "images": body.get("images") or [],
            "duration": body.get("duration", 5),
            "resolution": resolution,
            "aspect_ratio": body.get("aspect_ratio", ""),
            "created_at": _iso(task.created_at),
            "creations": creations,
        }

    def created_view(self, task: ViduTask) -> dict[str, Any]:
        body = task.body
        return {
            "task_id": task.id,
            "state": "created",
            **{k: v for k, v in body.items() if k not in ("callback_url", "wm_url", "meta_data")},
            "credits": self.credits(task),
            "created_at": _iso(task.created_at),
        }

    def account(self, key: str) -> dict[str, Any]:
        mine = [t for t in self.tasks.values() if t.key == key]
        return {
            "remains": [
                {
                    "type": "metered",
                    "credit_remain": 100000,
                    "concurrency_limit": self.concurrency,
                    "current_concurrency": sum(1 for t in mine if self.state(t) == "processing"),
                    "queue_count": sum(1 for t in mine if self.state(t) in ("created", "queueing")),
                }
            ],
            "packages": [],
        }

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "max_creates_per_payload": max(self.creates_by_payload.values(), default=0),
            "lookups_total": self.lookups_by_task.total(),
            "callbacks": len(self.callbacks),
        }

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()
        self.callbacks.clear()
        self.creates_by_payload.clear()
        self.lookups_by_task.clear()
        self.callback_watch.clear()
        self._timelines.clear()

    # -- HTTP (vidu_server), callbacks (vidu_callbacks) ----------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        from reelgate.testing.vidu_server import vidu_routes

        return vidu_routes(self)

    def injected_error(self, status: int) -> Response:
        from reelgate.testing.vidu_server import error_response

        reason = "TooManyRequests" if status == 429 else "InternalServiceFailure"
        message = "too many requests" if status == 429 else "internal service failure"
        return error_response(ViduError(status, reason, message))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        from reelgate.testing.vidu_callbacks import CallbackSender

        sender = asyncio.get_running_loop().create_task(
            CallbackSender(self, interval_s=self.callback_interval_s).run()
        )
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


def _seq(task: ViduTask) -> int:
    return task.seq


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _build(options: SimulatorOptions) -> UpstreamSimulator:
    sim = ViduSimulator(api_keys=set(options.keys))
    if options.queued_seconds is not None:
        sim.queued_seconds = options.queued_seconds
    if options.running_seconds is not None:
        sim.running_seconds = options.running_seconds
    return sim


ENTRY = SimulatorEntry(
    "vidu", _build, "add a vidu channel with this base_url (REELGATE_CHANNELS or the admin API)"
)
