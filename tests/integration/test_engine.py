"""The worker against a real SQLite file and the sandbox provider, on an injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelgate.core.errors import UpstreamUnavailable
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Status
from reelgate.core.request import VideoRequest
from reelgate.core.schedule import MAX_MISSING_LOOKS, MAX_SUBMIT_ATTEMPTS
from reelgate.engine.worker import Worker
from reelgate.providers.registry import Registry
from reelgate.providers.sandbox.provider import SandboxProvider
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import InMemoryProvider, ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


T0 = 1_000_000.0  # the tests' "now": timestamps below are counted from it


async def owner(service: VideoService) -> ApiToken:
    record, _ = await service.create_token("t")
    return record


@dataclass
class Rig:
    clock: ManualClock
    service: VideoService
    worker: Worker
    sandbox: SandboxProvider | None = None


def rig(store: SqlStore, provider: Any, clock: ManualClock | None = None) -> Rig:
    """A service and worker around ``provider``, all on one injected clock."""
    clock = clock or ManualClock(T0)
    service = VideoService(store, Registry([provider]), clock=clock, monotonic=clock)
    sandbox = provider if isinstance(provider, SandboxProvider) else None
    return Rig(clock, service, Worker(service, clock=clock), sandbox)


def sandbox_rig(store: SqlStore, tmp_path: Path, queue: float, run: float) -> Rig:
    clock = ManualClock(T0)
    return rig(
        store, SandboxProvider(tmp_path, queue_seconds=queue, run_seconds=run, clock=clock), clock
    )


def t2v(prompt: str = "a cat") -> VideoRequest:
    return VideoRequest(model="sandbox-t2v", prompt=prompt, duration=1, size=(160, 120))


async def test_a_task_lives_its_whole_life(store: SqlStore, tmp_path: Path) -> None:
    r = sandbox_rig(store, tmp_path, queue=5, run=5)
    clock, service, worker, sandbox = r.clock, r.service, r.worker, r.sandbox
    assert sandbox is not None
    me = await owner(service)
    task = await service.create(me, t2v())
    assert (task.status, task.submit_time) == (Status.QUEUED, 1_000_000)

    assert await worker.tick() == 1  # submits
    submitted = await store.get_task(me.id, task.id)
    assert submitted is not None
    assert submitted.upstream_id is not None
    assert submitted.upstream_id.startswith("sbx-")
    assert submitted.status is Status.QUEUED

    clock.advance(7)  # past the queue phase, and past the first poll delay
    await worker.tick()
    running = await service.get(me, task.id)
    assert (running.status, running.start_time) == (Status.IN_PROGRESS, 1_000_007)

    await asyncio.gather(*list(sandbox._renders.values()))  # the render is real work
    clock.advance(30)  # the next look closes in on the expected finish (a minute by default)
    await worker.tick()
    done = await service.get(me, task.id)
    assert done.status is Status.SUCCESS
    assert (done.start_time, done.finish_time) == (1_000_007, 1_000_037)
    assert done.result_url == f"local://sandbox/{submitted.upstream_id}.mp4"
    assert (tmp_path / "sandbox" / "media" / f"{submitted.upstream_id}.mp4").stat().st_size > 0

    clock.advance(60)
    assert await worker.tick() == 0  # terminal tasks are never claimed again


async def test_due_times_are_respected(store: SqlStore, tmp_path: Path) -> None:
    r = sandbox_rig(store, tmp_path, queue=100, run=100)
    clock, service, worker = r.clock, r.service, r.worker
    await service.create(await owner(service), t2v())
    assert await worker.tick() == 1
    assert await worker.tick() == 0  # the first look is scheduled ahead, not now
    clock.advance(10)
    assert await worker.tick() == 1


async def test_a_vanished_upstream_task_ends_as_lost(store: SqlStore, tmp_path: Path) -> None:
    r = sandbox_rig(store, tmp_path, queue=100, run=100)
    clock, service, worker = r.clock, r.service, r.worker
    me = await owner(service)
    task = await service.create(me, t2v())
    await worker.tick()
    for job in (tmp_path / "sandbox" / "jobs").glob("*.json"):
        job.unlink()
    for _ in range(MAX_MISSING_LOOKS):
        clock.advance(60)
        await worker.tick()
    lost = await service.get(me, task.id)
    assert (lost.status, lost.error_code) == (Status.FAILURE, "upstream_lost")


def flaky(clock: ManualClock, failures: int) -> InMemoryProvider:
    """An in-memory upstream whose first ``failures`` submits answer a 503 (Retry-After 30)."""
    up = InMemoryProvider(clock, name="flaky", queued=0, running=0)
    up.errors = [UpstreamUnavailable("busy", retry_after=30) for _ in range(failures)]
    return up


async def test_submission_is_retried_after_retry_after(store: SqlStore) -> None:
    clock = ManualClock(T0)
    up = flaky(clock, failures=2)
    r = rig(store, up, clock)
    clock, service, worker = r.clock, r.service, r.worker
    me = await owner(service)
    task = await service.create(me, VideoRequest(model="flaky-1", prompt="x"))
    await worker.tick()
    await worker.tick()
    assert up.submit_calls == 1  # waiting out Retry-After
    clock.advance(31)
    await worker.tick()
    clock.advance(31)
    await worker.tick()
    assert up.submit_calls == 3
    clock.advance(10)
    await worker.tick()
    assert (await service.get(me, task.id)).status is Status.SUCCESS


async def test_submission_gives_up_with_a_clear_code(store: SqlStore) -> None:
    clock = ManualClock(T0)
    up = flaky(clock, failures=10_000)
    r = rig(store, up, clock)
    clock, service, worker = r.clock, r.service, r.worker
    me = await owner(service)
    task = await service.create(me, VideoRequest(model="flaky-1", prompt="x"))
    for _ in range(MAX_SUBMIT_ATTEMPTS):
        await worker.tick()
        clock.advance(120)
    ended = await service.get(me, task.id)
    assert (ended.status, ended.error_code) == (Status.FAILURE, "upstream_unavailable")
    assert up.submit_calls == MAX_SUBMIT_ATTEMPTS


async def test_a_crashed_workers_lease_expires(store: SqlStore, tmp_path: Path) -> None:
    r = sandbox_rig(store, tmp_path, queue=100, run=100)
    clock, service, worker = r.clock, r.service, r.worker
    await service.create(await owner(service), t2v())
    await worker.tick()  # submitted
    clock.advance(60)
    claimed = await store.claim_due(clock(), 10, "dead-worker", lease_seconds=60)
    assert len(claimed) == 1
    assert await store.claim_due(clock(), 10, "other", lease_seconds=60) == []
    clock.advance(61)
    assert len(await store.claim_due(clock(), 10, "other", lease_seconds=60)) == 1
