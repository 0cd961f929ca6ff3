"""The engine's queue rules on a real SQLite file, an in-memory provider and an injected clock:
admission caps, reconciliation after a crash, deadlines, callbacks, rate limits, wake-ups and
graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reelgate.core import schedule
from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import UpstreamError, UpstreamUnavailable
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Callback, CallbackHint, Status, Task
from reelgate.core.request import VideoRequest
from reelgate.engine.callbacks import CallbackUrls
from reelgate.engine.worker import MIN_WAIT, Worker
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import InMemoryProvider, ManualClock
from tests.integration.test_engine import owner

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def upstream(clock: ManualClock, **kw: Any) -> InMemoryProvider:
    """The in-memory upstream of these tests: provider "mem", model "mem-1"."""
    return InMemoryProvider(clock, name="mem", **kw)


def engine(
    store: SqlStore, *accounts: InMemoryProvider, clock: ManualClock, **worker_kw: object
) -> tuple[VideoService, Worker]:
    service = VideoService(store, Registry(list(accounts)), clock=clock, monotonic=clock)
    return service, Worker(service, clock=clock, **worker_kw)  # type: ignore[arg-type]


async def called(service: VideoService, provider: str, task_id: str, body: bytes) -> bool:
    """Whether a callback with ``body`` brought the task's look-up forward."""
    scheduled, _ = await service.callback(provider, task_id, Callback(body))
    return scheduled


def request(**kw: object) -> VideoRequest:
    return VideoRequest(model="mem-1", prompt="a cat", **kw)  # type: ignore[arg-type]


async def test_the_admission_queue_holds_tasks_beyond_an_accounts_caps(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, caps=AdmissionCaps(max_queued=2), queued=10, running=100)
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    ids = []
    for _ in range(5):
        ids.append((await service.create(me, request())).id)
        clock.advance(0.01)
    await worker.tick()
    assert set(up.submits) == set(ids[:2])  # the rest wait in reelgate, not in a 429 upstream
    waiting = await service.get(me, ids[2])
    assert (waiting.status, waiting.upstream_id) == (Status.QUEUED, None)
    clock.advance(5)
    await worker.tick()
    assert set(up.submits) == set(ids[:2])
    clock.advance(40)  # the first two run now: once reelgate has looked, room opens
    await worker.tick()
    await worker.tick()
    # In order: each round admits the oldest waiting tasks (sent concurrently within a round).
    assert set(up.submits[:2]) == set(ids[:2])
    assert set(up.submits[2:]) == set(ids[2:4])
    clock.advance(60)
    for _ in range(3):
        await worker.tick()
    assert set(up.submits[4:]) == {ids[4]}


async def test_a_second_account_takes_what_the_first_has_no_room_for(store: SqlStore) -> None:
    clock = ManualClock()
    a = upstream(clock, channel="a", caps=AdmissionCaps(max_in_flight=1))
    b = upstream(clock, channel="b", caps=AdmissionCaps(max_in_flight=2))
    service, worker = engine(store, a, b, clock=clock)
    me = await owner(service)
    for _ in range(4):
        await service.create(me, request())
    await worker.tick()
    assert (len(a.submits), len(b.submits)) == (1, 2)
    tasks = [await service.get(me, t) for t in a.submits + b.submits]
    assert [t.channel for t in tasks] == ["a", "b", "b"]
    # Looks stick to the account that submitted: each account is asked about its own tasks.
    clock.advance(30)
    await worker.tick()
    assert a.lookups == 1
    assert b.lookups == 1


async def made_by_a_dead_worker(
    store: SqlStore, up: InMemoryProvider
) -> tuple[VideoService, Worker, ApiToken, Task]:
    """A task a worker claimed (lease 30 s) and the upstream created, the worker dying before it
    recorded the upstream id."""
    service, worker = engine(store, up, clock=up.clock, lease_seconds=30)
    me = await owner(service)
    task = await service.create(me, request())
    claimed = await store.claim_admission("mem", "default", up.caps, up.clock(), "dead", 30, 10)
    await up.submit(claimed[0].id, NormalizedRequest.from_json(claimed[0].request))
    return service, worker, me, task


async def test_a_crash_after_the_upstream_call_does_not_make_a_second_task(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    up = upstream(clock)
    service, worker, me, task = await made_by_a_dead_worker(store, up)
    await worker.tick()
    assert len(up.submits) == 1  # still leased by the dead worker: nothing happens
    clock.advance(31)
    await worker.tick()
    assert len(up.submits) == 1  # reconciled, not re-sent
    assert up.reconciles == 1
    recovered = await service.get(me, task.id)
    assert recovered.upstream_id == "default-0"
    assert recovered.submit_started_at is None


async def test_a_lost_reply_is_reconciled_before_the_retry(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock)
    up.errors.append(UpstreamUnavailable("timed out", code="upstream_timeout"))
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    clock.advance(120)
    await worker.tick()
    assert up.reconciles == 1  # looked before sending again
    assert up.submits == [task.id]


@pytest.mark.parametrize(
    "answer",
    [
        UpstreamUnavailable("Ark 429", code="upstream_rate_limited", retry_after=1),
        UpstreamUnavailable("Ark 500", code="upstream_unavailable"),
    ],
    ids=lambda e: e.code,
)
async def test_a_failed_reconcile_leaves_the_earlier_attempt_in_doubt(
    store: SqlStore, answer: UpstreamError
) -> None:
    # Found by the chaos suite: a 429 to the look for a crashed worker's attempt was taken as
    # "the upstream made nothing" (true of a 429 to a create), so the next attempt sent the
    # create again without looking, and the task was made twice.
    clock = ManualClock()
    up = upstream(clock)
    service, worker, me, task = await made_by_a_dead_worker(store, up)
    clock.advance(31)  # the dead worker's lease is over
    up.fail_reconciles.append(answer)
    await worker.tick()
    assert (up.reconciles, up.submits) == (1, [task.id])
    clock.advance(120)
    await worker.tick()
    assert up.reconciles == 2  # looked again before any create
    assert up.submits == [task.id]
    recovered = await service.get(me, task.id)
    assert recovered.upstream_id == "default-0"


async def test_every_task_ends_by_its_deadline(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, caps=AdmissionCaps(max_in_flight=1), queued=10_000, running=10)
    service = VideoService(
        store, Registry([up]), clock=clock, monotonic=clock, max_task_seconds=7200
    )
    worker = Worker(service, clock=clock)
    me = await owner(service)
    expiring = await service.create(me, request(metadata={"execution_expires_after": 3600}))
    clock.advance(0.01)
    await service.create(me, request())
    clock.advance(0.01)
    stuck_in_queue = await service.create(me, request())
    await worker.tick()
    submitted = await service.get(me, expiring.id)
    assert submitted.deadline_at == pytest.approx(clock() + 3600 + 300)
    clock.advance(3600 + 301)
    await worker.tick()
    ended = await service.get(me, expiring.id)
    assert (ended.status, ended.error_code) == (Status.FAILURE, "timeout")
    waiting = await service.get(me, stuck_in_queue.id)
    assert waiting.status is Status.QUEUED
    clock.advance(7200)
    await worker.tick()
    ended = await service.get(me, stuck_in_queue.id)
    assert (ended.status, ended.error_code) == (Status.FAILURE, "timeout")
    assert "queue" in ended.error_message


async def test_a_callback_brings_the_confirming_look_forward(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=5, running=5)
    urls = CallbackUrls(b"k" * 32, "https://gw.example")
    service, worker = engine(store, up, clock=clock, callbacks=urls, poll_interval=5.0)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    assert up.callback_urls == [urls.url("mem", task.id)]
    clock.advance(2)
    await worker.tick()  # the first look: still queued
    looks = up.lookups
    clock.advance(10)  # done upstream; the safety-net schedule would look much later
    assert await worker.tick() == 0
    assert not await called(
        service, "mem", task.id, up.callback_body("someone-else", "succeeded")
    )  # names another task
    assert not await called(service, "other", task.id, up.callback_body("default-0"))
    assert await called(service, "mem", task.id, up.callback_body("default-0"))
    assert not await called(
        service, "mem", task.id, up.callback_body("default-0")
    )  # a burst: one look
    due = schedule.callback_look(clock(), final=True)
    assert clock() + schedule.CALLBACK_COALESCE <= due
    assert due <= clock() + schedule.CALLBACK_COALESCE + schedule.CALLBACK_GRID
    assert await worker.idle_wait() == pytest.approx(due - clock())  # sleeps until then
    clock.set(due)
    await worker.tick()
    assert up.lookups == looks + 1
    done = await service.get(me, task.id)
    assert done.status is Status.SUCCESS
    # Replayed after the end: changes nothing, costs nothing.
    assert not await called(service, "mem", task.id, up.callback_body("default-0"))
    clock.advance(1)
    await worker.tick()
    assert up.lookups == looks + 1


async def test_an_idle_worker_sleeps_until_the_next_look_falls_due(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=5, running=100)
    service, worker = engine(store, up, clock=clock, poll_interval=30.0)
    assert await worker.idle_wait() == 30.0  # nothing in flight: the idle interval
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()  # submitted; its first look is scheduled
    due = (await service.get(me, task.id)).next_poll_at
    assert clock() < due < clock() + 30
    assert await worker.idle_wait() == pytest.approx(due - clock())
    worker.clock_rate = 10.0  # a benchmark's clock, 10x fast: the wall wait is 10x shorter
    assert await worker.idle_wait() == pytest.approx((due - clock()) / 10)
    worker.poll_interval = 0.05  # never longer than the idle interval
    assert await worker.idle_wait() == 0.05
    clock.set(due + 1)  # overdue: at once (a floor keeps a loop from spinning)
    assert await worker.idle_wait() == MIN_WAIT


async def test_an_accounts_request_rate_is_shared_and_kept(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, caps=AdmissionCaps(rpm=60))  # 1 per second, bursts of 6
    service, worker = engine(store, up, clock=clock)
    _, other_worker = engine(store, up, clock=clock)
    me = await owner(service)
    for _ in range(10):
        await service.create(me, request())
    await worker.tick()
    await other_worker.tick()  # a second worker shares the same bucket
    assert len(up.submits) == 6
    clock.advance(5)  # five more tokens: the four waiting submissions and one batch look-up
    await worker.tick()
    assert len(up.submits) == 10


async def test_the_schedule_learns_each_models_typical_duration(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=100, running=100)
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    await service.create(me, request())
    await worker.tick()
    for _ in range(40):
        clock.advance(15)
        await worker.tick()
    assert (await store.typical_durations())[("mem", "mem-1")] == pytest.approx(200, abs=31)


async def test_waiters_wake_on_a_change(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=1, running=100)
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    waiting = asyncio.create_task(service.wait_change(me, task.id, task.version, 30))
    await asyncio.sleep(0)
    assert not waiting.done()
    await worker.tick()  # submitted: a new version
    changed = await asyncio.wait_for(waiting, 5)
    assert changed.version > task.version
    assert changed.upstream_id is not None
    # With nothing changing, the wait ends after its time with the task as it is.
    same = await service.wait_change(me, task.id, changed.version, 0.01)
    assert same.version == changed.version


async def test_shutdown_finishes_the_round_and_releases_leases(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock)
    up.gate = asyncio.Event()
    service, worker = engine(store, up, clock=clock, poll_interval=0.01)
    me = await owner(service)
    task = await service.create(me, request())
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (await store.find_task(task.id)).submit_started_at is not None:  # type: ignore[union-attr]
            break
    stop.set()  # mid-submit
    await asyncio.sleep(0.05)
    assert not running.done()  # the round under way is finished first
    up.gate.set()
    await asyncio.wait_for(running, 5)
    saved = await service.get(me, task.id)
    assert saved.upstream_id == "default-0"
    async with store._engine.connect() as conn:
        held = await conn.exec_driver_sql(
            "SELECT count(*) FROM tasks WHERE lease_owner IS NOT NULL"
        )
        assert held.scalar_one() == 0


async def test_a_hanging_create_does_not_hold_back_look_ups(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=1, running=1)
    service, worker = engine(store, up, clock=clock, poll_interval=0.01)
    me = await owner(service)
    first = await service.create(me, request())
    await worker.tick()  # submitted; not due for a look yet
    submitted = await service.get(me, first.id)
    up.gate = asyncio.Event()  # the next create hangs (until the upstream's timeout, say)
    second = await service.create(me, request())
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            hanging = await store.find_task(second.id)
            if hanging is not None and hanging.submit_started_at is not None:
                break  # its create is under way
        clock.advance(60)  # meanwhile the first is done upstream, and its look falls due
        done = await service.wait_status(me, first.id, submitted.version, 5)
        assert done.status is Status.SUCCESS  # looked up while the create still hangs
        assert (await store.find_task(second.id)).upstream_id is None  # type: ignore[union-attr]
    finally:
        up.gate.set()
        stop.set()
        await asyncio.wait_for(running, 5)
    assert (await store.find_task(second.id)).upstream_id is not None  # type: ignore[union-attr]


async def test_a_long_poll_answers_within_100ms_of_a_status_change(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=5, running=100)
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()  # submitted: queued upstream, a new version but the same status
    submitted = await service.get(me, task.id)
    waiting = asyncio.create_task(service.wait_status(me, task.id, submitted.version, 30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock.advance(40)
    await worker.tick()  # running now: the waiter must hear of it at once
    changed = await asyncio.wait_for(waiting, 0.1)
    assert changed.status is Status.IN_PROGRESS
    # A client holding an older version is answered at once, without waiting.
    stale = await asyncio.wait_for(service.wait_status(me, task.id, task.version, 30), 0.1)
    assert stale.version == changed.version


async def test_a_long_poll_sees_a_change_it_could_not_hear_of(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=5, running=100)
    service, worker = engine(store, up, clock=clock)
    _, other_worker = engine(store, up, clock=clock)  # another process's service and worker
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    service.recheck = 0.05
    waiting = asyncio.create_task(service.wait_status(me, task.id, None, 30))
    await asyncio.sleep(0.05)
    clock.advance(40)
    await other_worker.tick()  # written by the other service: no event reaches this one
    assert (await asyncio.wait_for(waiting, 2)).status is Status.IN_PROGRESS


async def test_a_task_still_in_reelgates_queue_is_cancelled_locally(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, caps=AdmissionCaps(max_in_flight=1))
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    first = await service.create(me, request())
    clock.advance(0.01)
    waiting = await service.create(me, request())
    await worker.tick()  # the first is submitted; the second waits for room
    assert up.submits == [first.id]
    cancelled = await service.cancel(me, waiting.id)
    assert (cancelled.status, cancelled.error_code) == (Status.FAILURE, "cancelled")
    clock.advance(3600)
    for _ in range(3):
        await worker.tick()
    assert waiting.id not in up.submits  # never sent upstream
    assert (await service.cancel(me, waiting.id)).error_code == "cancelled"  # twice is fine


async def test_a_create_that_waited_past_its_lease_is_not_sent_twice(store: SqlStore) -> None:
    """A worker that claimed a task but waited for a submit slot longer than its lease checks
    that the task is still its own before sending it: another worker took it over meanwhile."""
    clock = ManualClock()
    up = upstream(clock)
    service, slow = engine(store, up, clock=clock, lease_seconds=30)
    other = Worker(service, clock=clock, lease_seconds=30)
    me = await owner(service)
    task = await service.create(me, request())
    slow._submit_slots = asyncio.Semaphore(1)
    await slow._submit_slots.acquire()  # every slot busy (creates hanging elsewhere)
    admitting = asyncio.create_task(slow.admit())
    for _ in range(500):
        await asyncio.sleep(0.01)
        claimed = await store.find_task(task.id)
        if claimed is not None and claimed.submit_started_at is not None:
            break  # claimed, and now waiting for a slot
    else:
        raise AssertionError("the slow worker never claimed the task")
    clock.advance(31)  # the slow worker's lease has run out: the other takes the task over
    assert await other.admit() == 1
    assert up.submits == [task.id]
    slow._submit_slots.release()
    await asyncio.wait_for(admitting, 5)
    assert up.submits == [task.id]  # the slow worker saw it had lost the lease
    done = await service.get(me, task.id)
    assert done.upstream_id == "default-0"


async def test_a_handshake_callback_is_answered_and_names_no_task(store: SqlStore) -> None:
    """An upstream whose callbacks start with a challenge (MiniMax's) gets its reply; the
    handshake itself brings no look-up forward."""

    class Handshaking(InMemoryProvider):
        def parse_callback(self, callback: Callback) -> CallbackHint | None:
            if callback.body.startswith(b'{"challenge"'):
                return CallbackHint("", False, reply=callback.body)
            return super().parse_callback(callback)

    clock = ManualClock()
    up = Handshaking(clock, name="mem", queued=10, running=10)
    service, worker = engine(store, up, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    challenge = b'{"challenge":"c-123"}'
    assert await service.callback("mem", task.id, Callback(challenge)) == (False, challenge)
    assert await called(service, "mem", task.id, up.callback_body("default-0"))
