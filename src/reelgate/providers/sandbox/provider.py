"""The sandbox provider: a local upstream that really renders MP4s, so reelgate works with no keys.

It behaves like a remote video API: jobs have ids, pass through queued → running → succeeded or
failed on a schedule, and keep their state in files under ``data_dir/sandbox`` so they survive a
restart of reelgate. Prompt markers script outcomes: ``[sandbox:fail]`` fails the job,
``[sandbox:expire]`` lets it expire, ``[sandbox:reject]`` refuses it at submission.

A render that cannot write its files (a full disk, a directory gone) is tried again after a
back-off (``RENDER_RETRY``) and, after ``MAX_RENDER_ATTEMPTS``, its job fails with
``render_failed``; nothing renders again while it waits. A job file that cannot be written makes
the submit a 503 (``upstream_unavailable``), retried like any busy upstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelgate.core.capabilities import Mode, ModelCapabilities, NormalizedRequest, Option
from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import Conflict, InvalidRequest, ReelgateError, UpstreamUnavailable
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.core.schedule import Backoff
from reelgate.net import Network, decode_data_uri, fetch_url
from reelgate.render import render_video

NAME = "sandbox"
LOCAL_SCHEME = "local://"
FAIL_MARKER = "[sandbox:fail]"
EXPIRE_MARKER = "[sandbox:expire]"
REJECT_MARKER = "[sandbox:reject]"
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# A render that could not write its files waits this long before the next attempt…
RENDER_RETRY = Backoff(first=2.0, factor=2.0, cap=60.0)
# …and after this many attempts its job fails with render_failed.
MAX_RENDER_ATTEMPTS = 4

log = logging.getLogger("reelgate.sandbox")

_TIMING = {
    "queue_seconds": Option(float, "seconds the job stays queued", minimum=0, maximum=600),
    "run_seconds": Option(
        float, "seconds the job runs before its file is ready", minimum=0, maximum=600
    ),
    "fail": Option(bool, "end the job as failed (same as the [sandbox:fail] marker)"),
    "fps": Option(int, "frames per second of the output", minimum=8, maximum=30),
}

MODELS = (
    ModelCapabilities(
        name="sandbox-t2v",
        provider=NAME,
        description="Local text-to-video renderer: the prompt drawn over moving frames.",
        modes=frozenset({Mode.TEXT_TO_VIDEO}),
        min_duration=1,
        max_duration=10,
        default_duration=3,
        default_size=(640, 360),
        max_pixels=1280 * 720,
        options=_TIMING,
        remix=True,
    ),
    ModelCapabilities(
        name="sandbox-i2v",
        provider=NAME,
        description="Local image-to-video renderer: starts from your image (first frame).",
        modes=frozenset({Mode.IMAGE_TO_VIDEO}),
        min_duration=1,
        max_duration=10,
        default_duration=3,
        default_size=(640, 360),
        max_pixels=1280 * 720,
        min_images=1,
        max_images=1,
        options=_TIMING,
        remix=True,
    ),
)


@dataclass(frozen=True, slots=True)
class _RenderFault:
    """Renders of a job that failed to write their files: how many, and when to try again."""

    attempts: int
    retry_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Job:
    id: str
    created_at: float
    queue_s: float
    run_s: float
    outcome: str  # "success" | "fail" | "expire"
    request: dict[str, Any]


class SandboxProvider:
    name = NAME
    channel = NAME  # its one built-in channel
    caps = AdmissionCaps()  # local work: no upstream queue to protect

    def __init__(
        self,
        data_dir: Path,
        *,
        queue_seconds: float,
        run_seconds: float,
        allow_networks: Sequence[Network] = (),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.root = data_dir / "sandbox"
        self._jobs_dir = self.root / "jobs"
        self._media_dir = self.root / "media"
        self._queue_s = queue_seconds
        self._run_s = run_seconds
        self._allow = allow_networks
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter
        self._renders: dict[str, asyncio.Task[None]] = {}
        self._render_faults: dict[str, _RenderFault] = {}
        # Jobs whose render failed for good but whose .error file could not be written either.
        self._render_failed: dict[str, str] = {}
        # Rendering is CPU work; a bound keeps it from starving the API.
        self._render_slots = asyncio.Semaphore(max(1, (os.cpu_count() or 2) // 2))

    def models(self) -> Sequence[ModelCapabilities]:
        return MODELS

    @property
    def typical_seconds(self) -> float:
        """How long a job takes by default: known from settings, not to be learned."""
        return self._queue_s + self._run_s

    # -- the "upstream API" -------------------------------------------------------------------
    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        """Start a job. Idempotent per task: the job id derives from the task id, so a second
        submit of the same task answers the first job instead of starting another."""
        existing = await self.reconcile(task_id, request, 0.0)
        if existing is not None:
            return existing
        prompt = request.prompt
        if REJECT_MARKER in prompt:
            raise InvalidRequest(
                "the sandbox refused this prompt (it contains [sandbox:reject])",
                code="content_moderation",
                param="prompt",
            )
        outcome = "success"
        if FAIL_MARKER in prompt or request.options.get("fail"):
            outcome = "fail"
        elif EXPIRE_MARKER in prompt:
            outcome = "expire"
        job = _Job(
            id=job_id_of(task_id),
            created_at=self._clock(),
            queue_s=float(request.options.get("queue_seconds", self._queue_s)),
            run_s=float(request.options.get("run_seconds", self._run_s)),
            outcome=outcome,
            request=request.to_json(),
        )
        await self._save(job)
        if outcome == "success":
            self._start_render(job)
        return job.id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        job = await asyncio.to_thread(self._read_job, job_id_of(task_id))
        return job.id if job is not None else None

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        """One batch: every job file is read in a single trip to the thread pool."""
        jobs = await asyncio.to_thread(lambda: [self._read_job(i) for i in upstream_ids])
        return {job.id: self._observe(job) for job in jobs if job is not None}

    async def cancel(self, upstream_id: str) -> None:
        job = await asyncio.to_thread(self._read_job, upstream_id)
        if job is None:
            raise Conflict("unknown sandbox job", code="not_cancellable")
        if self._observe(job).state is not UpstreamState.QUEUED:
            raise Conflict(
                "the job is already running and cannot be cancelled", code="not_cancellable"
            )
        await self._save(_replace_outcome(job, "cancelled"))

    async def _save(self, job: _Job) -> None:
        try:
            await asyncio.to_thread(self._write_job, job)
        except OSError as exc:  # a full disk: like a busy upstream, try again later
            raise UpstreamUnavailable(
                f"the sandbox cannot write its job files ({exc.strerror or type(exc).__name__})"
            ) from exc

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        return None  # the sandbox never calls back; the engine's polling is enough locally

    async def probe(self) -> None:
        return None  # local: always able to work

    async def close(self) -> None:
        for task in list(self._renders.values()):
            task.cancel()
        self._renders.clear()

    # -- internals ---------------------------------------------------------------------------
    @property
    def media_root(self) -> Path:
        """Where the files behind ``local://sandbox/<name>`` live."""
        return self._media_dir

    def _observe(self, job: _Job) -> Observation:
        elapsed = self._clock() - job.created_at
        if job.outcome == "cancelled":
            return Observation(UpstreamState.CANCELLED)
        if elapsed < job.queue_s:
            return Observation(UpstreamState.QUEUED)
        if job.outcome == "expire":
            return Observation(UpstreamState.EXPIRED)
        if elapsed < job.queue_s + job.run_s:
            return Observation(UpstreamState.RUNNING)
        if job.outcome == "fail":
            return Observation(
                UpstreamState.FAILED,
                error_code="sandbox_failure",
                error_message="task failed: the sandbox was asked to fail it",
            )
        failed = self._render_failed.get(job.id) or _read_text(self._jobs_dir / f"{job.id}.error")
        if failed is not None:
            return Observation(
                UpstreamState.FAILED, error_code="render_failed", error_message=failed
            )
        video = self._media_dir / f"{job.id}.mp4"
        if video.exists():
            return Observation(
                UpstreamState.SUCCEEDED,
                video_url=f"{LOCAL_SCHEME}{NAME}/{job.id}.mp4",
                last_frame_url=f"{LOCAL_SCHEME}{NAME}/{job.id}.png",
                extra={"updated_at": job.created_at + job.queue_s + job.run_s},
            )
        fault = self._render_faults.get(job.id)
        if fault is None or self._clock() >= fault.retry_at:
            self._start_render(job)  # after a restart or a failed write, render (again)
        return Observation(UpstreamState.RUNNING)

    def _start_render(self, job: _Job) -> None:
        if job.id not in self._renders:
            task = asyncio.get_running_loop().create_task(self._render(job))
            self._renders[job.id] = task
            task.add_done_callback(lambda _t: self._renders.pop(job.id, None))

    async def _render(self, job: _Job) -> None:
        req = NormalizedRequest.from_json(job.request)
        async with self._render_slots:
            try:
                first = await self._image_bytes(req.images[0]) if req.images else None
                await asyncio.to_thread(
                    render_video,
                    self._media_dir / f"{job.id}.mp4",
                    prompt=req.prompt,
                    duration_s=req.duration,
                    width=req.width,
                    height=req.height,
                    fps=int(req.options.get("fps", 24)),
                    first_frame=first,
                    last_frame_path=self._media_dir / f"{job.id}.png",
                )
            except (ValueError, ReelgateError) as exc:  # the request cannot be rendered
                message = exc.message if isinstance(exc, ReelgateError) else str(exc)
                await self._render_ended(job, f"render failed: {message}")
            except OSError as exc:  # the files cannot be written: maybe later
                self._render_wrote_nothing(job, exc)
            except Exception as exc:  # the renderer's bug: logged, and the job ends
                log.error("rendering %s raised %s", job.id, type(exc).__name__, exc_info=exc)
                await self._render_ended(job, "render failed: internal error in the renderer")
            else:
                self._render_faults.pop(job.id, None)

    def _render_wrote_nothing(self, job: _Job, exc: OSError) -> None:
        before = self._render_faults.get(job.id)
        attempts = (before.attempts if before else 0) + 1
        reason = f"render failed: cannot write the video ({exc.strerror or type(exc).__name__})"
        if attempts >= MAX_RENDER_ATTEMPTS:
            self._render_faults.pop(job.id, None)
            self._render_failed[job.id] = reason  # the disk may be too full for a .error file
            log.error("rendering %s failed %d times: %s", job.id, attempts, reason)
            return
        delay = RENDER_RETRY.delay(attempts - 1, self._rng)
        self._render_faults[job.id] = _RenderFault(attempts, self._clock() + delay, reason)
        log.warning("rendering %s failed (%s); trying again in %.0f s", job.id, reason, delay)

    async def _render_ended(self, job: _Job, message: str) -> None:
        self._render_faults.pop(job.id, None)
        try:
            await asyncio.to_thread(
                (self._jobs_dir / f"{job.id}.error").write_text, message, "utf-8"
            )
        except OSError:
            self._render_failed[job.id] = message  # kept in memory: the disk is full, say

    async def _image_bytes(self, ref: str) -> bytes:
        if ref.startswith("data:"):
            return decode_data_uri(ref)
        return await fetch_url(ref, max_bytes=MAX_IMAGE_BYTES, allow=self._allow)

    def _write_job(self, job: _Job) -> None:
        self._jobs_dir.mkdir(parents=True, exist_ok=True)
        self._media_dir.mkdir(parents=True, exist_ok=True)
        path = self._jobs_dir / f"{job.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "id": job.id,
                    "created_at": job.created_at,
                    "queue_s": job.queue_s,
                    "run_s": job.run_s,
                    "outcome": job.outcome,
                    "request": job.request,
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, path)

    def _read_job(self, job_id: str) -> _Job | None:
        if not job_id.startswith("sbx-") or "/" in job_id or "\\" in job_id:
            return None
        try:
            data = json.loads((self._jobs_dir / f"{job_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return _Job(
            id=data["id"],
            created_at=float(data["created_at"]),
            queue_s=float(data["queue_s"]),
            run_s=float(data["run_s"]),
            outcome=str(data["outcome"]),
            request=dict(data["request"]),
        )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"render failed: its outcome cannot be read ({exc.strerror or type(exc).__name__})"


def job_id_of(task_id: str) -> str:
    """The sandbox job of a task: one per task, whatever happens to the submission."""
    return "sbx-" + hashlib.sha256(task_id.encode()).hexdigest()[:24]


def _replace_outcome(job: _Job, outcome: str) -> _Job:
    return _Job(job.id, job.created_at, job.queue_s, job.run_s, outcome, job.request)
