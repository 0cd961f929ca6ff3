"""``InMemoryProvider``: a provider whose upstream is a dictionary, for tests of everything around
a provider (the service, the engine, channels, billing) without HTTP.

Its tasks follow a timeline on an injected clock (``queued`` seconds queued, then ``running``
seconds running) and end as scripted (``script(Outcome.FAILURE)``); the shared fault kinds
(``inject(Fault("create", FaultKind.TIMEOUT))``) become the errors a real provider raises for
them, and ``errors``, ``fail_reconciles``, ``probe_error`` and ``gate`` script anything else.
Everything it was asked is counted (``submits``, ``lookups``, ``reconciles``, ``probes``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reelgate.core.capabilities import Mode, ModelCapabilities, NormalizedRequest, Option
from reelgate.core.channels import DEFAULT_CHANNEL, AdmissionCaps
from reelgate.core.errors import Conflict, ReelgateError, UpstreamError, UpstreamUnavailable
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.testing.simulator.faults import take_fault
from reelgate.testing.simulator.kinds import Fault, FaultKind, Outcome

__all__ = ["MEMORY", "InMemoryProvider", "MemoryJob", "memory_model"]

MEMORY = "memory"
_LOST = {
    FaultKind.TIMEOUT: ("the upstream timed out", "upstream_timeout"),
    FaultKind.RESET: ("the connection was reset", "upstream_unavailable"),
    FaultKind.MALFORMED: ("the upstream answered with malformed JSON", "upstream_bad_response"),
}
_ENDPOINTS = ("create", "lookup", "cancel", "any")


def memory_model(name: str, provider: str = MEMORY) -> ModelCapabilities:
    """A small text-to-video model (1 to 5 s, 64x64) served by an in-memory provider."""
    return ModelCapabilities(
        name=name,
        provider=provider,
        description="In-memory test model.",
        modes=frozenset({Mode.TEXT_TO_VIDEO}),
        min_duration=1,
        max_duration=5,
        default_duration=1,
        default_size=(64, 64),
        options={"execution_expires_after": Option(int, "s", minimum=3600, maximum=259200)},
    )


@dataclass
class MemoryJob:
    id: str
    task_id: str
    created_at: float
    outcome: Outcome
    callback_url: str | None = None
    cancelled: bool = False


class InMemoryProvider:
    """One channel of an in-memory upstream (see the module docstring)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        name: str = MEMORY,
        channel: str = DEFAULT_CHANNEL,
        caps: AdmissionCaps | None = None,
        queued: float = 10.0,
        running: float = 10.0,
        models: Sequence[ModelCapabilities] | None = None,
        video_url: str = "https://cdn.example/{id}.mp4",
        last_frame_url: str = "",
    ) -> None:
        """``video_url`` and ``last_frame_url`` are templates of a result's addresses
        (``{id}``: the upstream id; an empty ``last_frame_url``: none)."""
        self.name = name
        self.channel = channel
        self.caps = caps or AdmissionCaps()
        self.clock = clock
        self.queued, self.running = queued, running
        self._models = list(models) if models is not None else [memory_model(f"{name}-1", name)]
        self.video_url, self.last_frame_url = video_url, last_frame_url
        self.jobs: dict[str, MemoryJob] = {}
        # What it was asked: task ids of the creates that reached it, and counts of the rest.
        self.submit_calls = 0  # every submit, failed ones included
        self.submits: list[str] = []
        self.callback_urls: list[str | None] = []
        self.lookups = 0  # look_up calls (one batch each)
        self.reconciles = 0
        self.probes = 0
        # What goes wrong: faults of the shared kinds, errors the next submits raise (nothing
        # created), errors the next reconciles raise, the probe's error, and a gate each submit
        # waits on (a create that hangs until the test opens it).
        self.faults: list[Fault] = []
        self.errors: list[ReelgateError] = []
        self.fail_reconciles: list[UpstreamError] = []
        self.probe_error: ReelgateError | None = None
        self.gate: asyncio.Event | None = None
        self._script: deque[Outcome] = deque()

    # -- scripting ----------------------------------------------------------------------------
    def script(self, outcome: Outcome, count: int = 1) -> None:
        """The next ``count`` tasks created end with ``outcome`` (the default is success)."""
        self._script.extend([Outcome(outcome)] * count)

    def inject(self, fault: Fault) -> None:
        """A fault at ``create``, ``lookup``, ``cancel`` or ``any``, as the errors a provider
        raises for it: an error answer (nothing created), or a lost answer (created, then an
        error). There is no wire to be slow on: ``SLOW`` is refused."""
        if fault.kind is FaultKind.SLOW:
            raise ValueError("an in-memory upstream has no wire to answer slowly on")
        if fault.endpoint not in _ENDPOINTS:
            raise ValueError(f"unknown endpoint {fault.endpoint!r} (one of {_ENDPOINTS})")
        self.faults.append(fault)

    def state(self, upstream_id: str) -> UpstreamState | None:
        """Where a job is on its timeline; None while it shows an unknown status."""
        job = self.jobs[upstream_id]
        age = self.clock() - job.created_at
        if job.cancelled:
            return UpstreamState.CANCELLED
        if age < self.queued:
            return UpstreamState.QUEUED
        if job.outcome is Outcome.EXPIRY:
            return UpstreamState.EXPIRED
        if age < self.queued + self.running:
            return None if job.outcome is Outcome.UNKNOWN_STATUS else UpstreamState.RUNNING
        if job.outcome in (Outcome.FAILURE, Outcome.MODERATION):
            return UpstreamState.FAILED
        return UpstreamState.SUCCEEDED

    def callback_body(self, upstream_id: str, status: str | None = None) -> bytes:
        """The callback this upstream would post for a job (its current status by default)."""
        if status is None:
            state = self.state(upstream_id)
            status = state.value if state is not None else "suspended"
        return json.dumps({"id": upstream_id, "status": status}).encode()

    # -- the Provider protocol ----------------------------------------------------------------
    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        self.submit_calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        fault = self._fault("create")
        if fault is not None and not fault.kind.loses_answer:
            raise _answered(fault)
        upstream_id = f"{self.channel}-{len(self.jobs)}"
        outcome = self._script.popleft() if self._script else Outcome.SUCCESS
        self.jobs[upstream_id] = MemoryJob(
            upstream_id, task_id, self.clock(), outcome, callback_url
        )
        self.submits.append(task_id)
        self.callback_urls.append(callback_url)
        if fault is not None:
            raise _lost(fault)
        return upstream_id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        self.reconciles += 1
        if self.fail_reconciles:
            raise self.fail_reconciles.pop(0)
        return next((j.id for j in self.jobs.values() if j.task_id == task_id), None)

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        self.lookups += 1
        fault = self._fault("lookup")
        if fault is not None:
            raise _answered(fault) if not fault.kind.loses_answer else _lost(fault)
        return {u: self._observe(u) for u in upstream_ids if u in self.jobs}

    async def cancel(self, upstream_id: str) -> None:
        fault = self._fault("cancel")
        if fault is not None and not fault.kind.loses_answer:
            raise _answered(fault)
        job = self.jobs.get(upstream_id)
        if job is None:
            raise Conflict("no such upstream task", code="not_cancellable")
        if self.state(upstream_id) is not UpstreamState.QUEUED:
            raise Conflict("the task is no longer queued", code="not_cancellable")
        job.cancelled = True
        if fault is not None:
            raise _lost(fault)

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        try:
            payload = json.loads(callback.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            return None
        return CallbackHint(payload["id"], payload.get("status") not in ("queued", "running"))

    async def probe(self) -> None:
        self.probes += 1
        if self.probe_error is not None:
            raise self.probe_error

    async def close(self) -> None:
        return None

    # -- internals ----------------------------------------------------------------------------
    def _fault(self, endpoint: str) -> Fault | None:
        return take_fault(self.faults, endpoint, {})

    def _observe(self, upstream_id: str) -> Observation | None:
        state = self.state(upstream_id)
        job = self.jobs[upstream_id]
        if state is UpstreamState.FAILED:
            moderated = job.outcome is Outcome.MODERATION
            return Observation(
                state,
                error_code="content_moderation" if moderated else "upstream_failed",
                error_message="the output was moderated" if moderated else "task failed",
            )
        if state is UpstreamState.SUCCEEDED:
            return Observation(
                state,
                video_url=self.video_url.format(id=upstream_id),
                last_frame_url=self.last_frame_url.format(id=upstream_id),
            )
        return Observation(state) if state is not None else None


def _answered(fault: Fault) -> UpstreamUnavailable:
    """The error a provider raises for an error answer of the upstream."""
    if fault.kind is FaultKind.SERVER_ERROR:
        return UpstreamUnavailable("in-memory upstream: injected 500")
    retry = fault.retry_after if fault.kind is FaultKind.RATE_LIMITED else None
    return UpstreamUnavailable(
        "in-memory upstream: injected 429", code="upstream_rate_limited", retry_after=retry
    )


def _lost(fault: Fault) -> UpstreamUnavailable:
    message, code = _LOST[fault.kind]
    return UpstreamUnavailable(f"in-memory upstream: {message}", code=code)
