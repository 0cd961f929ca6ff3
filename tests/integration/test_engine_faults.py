"""Fault isolation in the engine's loops (issue #16, item 1), on a real SQLite file, an injected
clock and an upstream that raises arbitrary exceptions on chosen tasks: the other tasks finish,
the chosen ones end ``internal_error``, and no loop stops."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from reelgate.api.health import Readiness
from reelgate.core import schedule
from reelgate.core.capabilities import Mode, ModelCapabilities, NormalizedRequest
from reelgate.core.channels import AdmissionCaps
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, Status, Task, UpstreamState
from reelgate.core.request import VideoRequest
from reelgate.core.webhooks import MAX_ATTEMPTS
from reelgate.engine import supervisor
from reelgate.engine.supervisor import FAULT_RETRY, INTERNAL_MESSAGE, MAX_FAULTS
from reelgate.engine.tracking import SPLIT_LOOKS
from reelgate.engine.webhooks import WebhookSender
from reelgate.engine.worker import Worker
from reelgate.files import LocalFiles
from reelgate.metrics import METRICS
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from tests.files import FileServer
from tests.integration.test_engine import T0, owner
from tests.integration.test_engine_queue import engine as queue_engine
from tests.integration.test_engine_queue import request as queue_request
from tests.integration.test_engine_queue import upstream as queue_upstream
from tests.integration.test_media import succeeded
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]

# Exceptions nobody planned for, as a provider's bug or an unexpected value would raise them.
RAISES: dict[str, BaseException] = {
    "TypeError": TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
    "UnicodeEncodeError": UnicodeEncodeError("utf-8", "\udfff", 0, 1, "surrogates not allowed"),
    "KeyError": KeyError("status"),
    "RuntimeError": RuntimeError("boom"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def faults(loop: str) -> float:
    return METRICS.registry.get_sample_value("reelgate_engine_faults_total", {"loop": loop}) or 0


class Hostile:
    """An in-memory upstream whose tasks succeed 10 s after submit, except that a prompt
    ``raise:<where>:<Exception>`` makes it raise that exception at ``submit``, ``lookup`` (the
    whole batch a task is in), ``observe`` (an answer with a status nobody knows), ``cancel``
    or ``callback`` (parsing one)."""

    name = "hostile"
    channel = "default"

    def __init__(self, clock: ManualClock, *, running: float = 10.0) -> None:
        self.clock = clock
        self.running = running
        self.caps = AdmissionCaps()
        self.jobs: dict[str, tuple[str, str, float]] = {}  # upstream id -> task, prompt, at
        self.submits: dict[str, int] = {}
        self.reconciles: dict[str, int] = {}
        self.lookups: list[int] = []  # the size of each batch asked for
        self.cancels = 0

    def models(self) -> Sequence[ModelCapabilities]:
        return [
            ModelCapabilities(
                name="hostile-1",
                provider="hostile",
                description="",
                modes=frozenset({Mode.TEXT_TO_VIDEO}),
                min_duration=1,
                max_duration=5,
                default_duration=1,
                default_size=(64, 64),
            )
        ]

    @staticmethod
    def _raise_for(prompt: str, where: str) -> None:
        for name, exc in RAISES.items():
            if f"raise:{where}:{name}" in prompt:
                raise exc

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        self.submits[task_id] = self.submits.get(task_id, 0) + 1
        self._raise_for(request.prompt, "submit")
        upstream_id = f"up-{len(self.jobs)}"
        self.jobs[upstream_id] = (task_id, request.prompt, self.clock())
        return upstream_id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        self.reconciles[task_id] = self.reconciles.get(task_id, 0) + 1
        return next((u for u, (t, _, _) in self.jobs.items() if t == task_id), None)

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        self.lookups.append(len(upstream_ids))
        seen: dict[str, Observation | None] = {}
        for u in upstream_ids:
            _, prompt, at = self.jobs[u]
            self._raise_for(prompt, "lookup")
            if "raise:observe" in prompt:
                seen[u] = Observation("exploded")  # type: ignore[arg-type]
            elif self.clock() - at < self.running:
                seen[u] = Observation(UpstreamState.QUEUED)
            else:
                seen[u] = Observation(UpstreamState.SUCCEEDED, video_url=f"https://cdn/{u}.mp4")
        return seen

    async def cancel(self, upstream_id: str) -> None:
        self.cancels += 1
        self._raise_for(self.jobs[upstream_id][1], "cancel")

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        upstream_id = callback.body.decode()
        self._raise_for(self.jobs[upstream_id][1], "callback")
        return CallbackHint(upstream_id, True)

    async def close(self) -> None:
        return None


class FlakyStore(SqlStore):
    """The real store on the same database, except that the methods named in ``broken`` raise
    the exception given there (a store that is away, or one with a bug)."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store._engine)
        self.broken: dict[str, BaseException] = {}
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("broken", "calls", "dialect"):
            broken = object.__getattribute__(self, "broken")
            if name in broken:
                calls = object.__getattribute__(self, "calls")
                calls[name] = calls.get(name, 0) + 1

                async def fail(*_args: object, **_kw: object) -> Any:
                    raise broken[name]

                return fail
        return super().__getattribute__(name)


class BrokenWait(Worker):
    """A worker whose idle wait raises while ``broken``: a failure outside any round."""

    broken = True

    async def idle_wait(self) -> float:
        if self.broken:
            raise RuntimeError("the wait itself is broken")
        return await super().idle_wait()


def engine(
    store: SqlStore, clock: ManualClock, worker: type[Worker] = Worker, **worker_kw: object
) -> tuple[VideoService, Worker, Hostile]:
    up = Hostile(clock)
    service = VideoService(store, Registry([up]), clock=clock, monotonic=clock)
    return service, worker(service, clock=clock, **worker_kw), up  # type: ignore[arg-type]


def make(prompt: str) -> VideoRequest:
    return VideoRequest(model="hostile-1", prompt=prompt)


async def run_until(
    worker: Worker, clock: ManualClock, done: object, *, step: float = 30.0, rounds: int = 200
) -> None:
    """Tick the worker, moving the clock on, until ``done()`` is true."""
    for _ in range(rounds):
        await worker.tick()
        if await done():  # type: ignore[operator]
            return
        clock.advance(step)
    raise AssertionError("not done in time")


@pytest.mark.parametrize("kind", list(RAISES))
async def test_a_submit_that_raises_ends_its_task_and_the_others_run(
    store: SqlStore, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    service, worker, up = engine(store, clock)
    me = await owner(service)
    good = [await service.create(me, make(f"fine {i}")) for i in range(3)]
    bad = await service.create(me, make(f"secret words raise:submit:{kind}"))
    before = faults("admission")

    async def ended() -> bool:
        tasks = [await service.get(me, t.id) for t in [*good, bad]]
        return all(t.status.terminal for t in tasks)

    with caplog.at_level(logging.ERROR, logger="reelgate.engine"):
        await run_until(worker, clock, ended)
    for task in good:
        assert (await service.get(me, task.id)).status is Status.SUCCESS
    failed = await service.get(me, bad.id)
    assert (failed.status, failed.error_code) == (Status.FAILURE, "internal_error")
    assert failed.error_message == INTERNAL_MESSAGE  # nothing of the exception for the client
    # Each attempt was retried after a back-off, and each resend first looked for the last one.
    assert up.submits[bad.id] == schedule.MAX_SUBMIT_ATTEMPTS
    assert up.reconciles[bad.id] == schedule.MAX_SUBMIT_ATTEMPTS - 1
    assert faults("admission") - before == schedule.MAX_SUBMIT_ATTEMPTS
    # The operator's log names the task and the exception, with its traceback; never the prompt.
    lines = [r for r in caplog.records if bad.id in r.getMessage()]
    assert lines
    assert lines[0].exc_info is not None
    assert kind in lines[0].getMessage()
    assert all("secret words" not in r.getMessage() for r in caplog.records)


async def test_a_look_up_that_raises_for_one_task_is_split_until_that_task_is_found(
    store: SqlStore,
) -> None:
    clock = ManualClock(T0)
    service, worker, up = engine(store, clock)
    me = await owner(service)
    tasks = [await service.create(me, make(f"fine {i}")) for i in range(40)]
    bad = await service.create(me, make("raise:lookup:KeyError"))
    await worker.tick()  # all submitted
    assert len(up.jobs) == 41
    clock.advance(60)  # done upstream, and due for a look
    up.lookups.clear()
    await worker.tick()
    # The innocent are seen to succeed in this very round…
    for task in tasks:
        assert (await service.get(me, task.id)).status is Status.SUCCESS
    # …at the price of a few more look-ups, not one per task.
    assert len(up.lookups) <= 1 + 2 * math.ceil(math.log2(41))
    assert (await service.get(me, bad.id)).status is Status.QUEUED  # one fault so far
    for _ in range(MAX_FAULTS):
        clock.advance(FAULT_RETRY.cap * 2)
        await worker.tick()
    failed = await service.get(me, bad.id)
    assert (failed.status, failed.error_code) == (Status.FAILURE, "internal_error")


async def test_a_look_up_that_always_raises_ends_each_task_after_its_own_faults(
    store: SqlStore,
) -> None:
    """A batch that raises whatever it holds: every task counts its own faults, waits longer
    after each, and ends; the splitting is bounded."""
    clock = ManualClock(T0)
    service, worker, up = engine(store, clock)
    me = await owner(service)
    tasks = [await service.create(me, make(f"raise:lookup:TypeError {i}")) for i in range(40)]
    await worker.tick()
    clock.advance(60)
    waits: list[float] = []
    for _ in range(MAX_FAULTS):
        up.lookups.clear()
        await worker.tick()
        assert len(up.lookups) <= 1 + SPLIT_LOOKS
        row = await store.find_task(tasks[0].id)
        assert row is not None
        if not row.status.terminal:
            waits.append(row.next_poll_at - clock())
        clock.advance(FAULT_RETRY.cap * 2)  # every task due again
    assert len(waits) == MAX_FAULTS - 1
    assert waits == sorted(waits)  # a longer wait after each fault
    assert waits[-1] > 10 * waits[0]
    for task in tasks:
        ended = await service.get(me, task.id)
        assert (ended.status, ended.error_code) == (Status.FAILURE, "internal_error")


async def test_an_answer_with_an_unknown_status_is_that_tasks_fault(store: SqlStore) -> None:
    clock = ManualClock(T0)
    service, worker, _ = engine(store, clock)
    me = await owner(service)
    good = await service.create(me, make("fine"))
    bad = await service.create(me, make("raise:observe"))

    async def ended() -> bool:
        return all([(await service.get(me, t.id)).status.terminal for t in (good, bad)])

    await run_until(worker, clock, ended, step=FAULT_RETRY.cap)
    assert (await service.get(me, good.id)).status is Status.SUCCESS
    assert (await service.get(me, bad.id)).error_code == "internal_error"


async def test_a_cancel_that_raises_does_not_keep_an_overdue_task_alive(store: SqlStore) -> None:
    clock = ManualClock(T0)
    up = Hostile(clock, running=10**9)  # never done: only the deadline ends these
    service = VideoService(
        store, Registry([up]), clock=clock, monotonic=clock, max_task_seconds=600
    )
    worker = Worker(service, clock=clock)
    me = await owner(service)
    bad = await service.create(me, make("raise:cancel:RuntimeError"))
    good = await service.create(me, make("fine"))
    await worker.tick()
    before = faults("sweeper")
    clock.advance(700)
    await worker.tick()
    for task in (bad, good):
        ended = await service.get(me, task.id)
        assert (ended.status, ended.error_code) == (Status.FAILURE, "timeout")
    assert up.cancels == 2
    assert faults("sweeper") - before == 1


async def test_a_callback_the_provider_cannot_parse_still_brings_a_look_forward(
    store: SqlStore,
) -> None:
    clock = ManualClock(T0)
    service, worker, up = engine(store, clock)
    me = await owner(service)
    task = await service.create(me, make("raise:callback:UnicodeEncodeError"))
    await worker.tick()
    upstream_id = next(iter(up.jobs))
    before = faults("callbacks")
    assert await service.callback("hostile", task.id, Callback(upstream_id.encode())) == (
        True,
        None,
    )
    assert faults("callbacks") - before == 1
    row = await store.find_task(task.id)
    assert row is not None
    assert row.next_poll_at <= clock() + schedule.CALLBACK_GRID


async def test_the_loops_keep_going_and_a_restarted_worker_does_not_stop_on_the_same_task(
    store: SqlStore,
) -> None:
    """The reported failure: a task whose submit raises stopped the worker, and again after each
    restart. Now the loops keep serving the other tasks, and so does a worker started anew."""
    clock = ManualClock(T0)
    service, first, up = engine(store, clock, poll_interval=0.01)
    me = await owner(service)
    bad = await service.create(me, make("raise:submit:UnicodeEncodeError"))
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if up.submits.get(bad.id, 0) >= 2:
            break
        clock.advance(5)  # the schedule's time passes; the loops' waits are wall-time and short
    assert up.submits[bad.id] >= 2
    good = await service.create(me, make("fine"))  # served while the bad one keeps failing
    for _ in range(500):
        await asyncio.sleep(0.01)
        clock.advance(5)
        if (await service.get(me, good.id)).status is Status.SUCCESS:
            break
    assert (await service.get(me, good.id)).status is Status.SUCCESS
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, 5)  # a clean stop, not an exception

    second = Worker(service, clock=clock, poll_interval=0.01)  # a restart of the process
    other = await service.create(me, make("fine too"))
    stop = asyncio.Event()
    running = asyncio.create_task(second.run(stop))
    try:
        for _ in range(1000):
            await asyncio.sleep(0.01)
            clock.advance(5)
            states = [(await service.get(me, t.id)).status for t in (bad, other)]
            if all(s.terminal for s in states):
                break
        assert not running.done()
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    ended = await service.get(me, bad.id)
    assert (ended.status, ended.error_code) == (Status.FAILURE, "internal_error")
    assert (await service.get(me, other.id)).status is Status.SUCCESS
    assert up.submits[bad.id] == schedule.MAX_SUBMIT_ATTEMPTS  # counted across the restart


async def test_a_loop_that_stops_anyway_is_started_again_and_shows_in_readiness(
    store: SqlStore,
) -> None:
    """A failure outside any round (here: computing the idle wait) stops the tracking loop; the
    supervisor starts it again after a back-off, counts it, and /readyz says so meanwhile."""
    clock = ManualClock(T0)
    waits: list[float] = []
    gate = asyncio.Event()

    async def pause_for(seconds: float, stop: asyncio.Event | None) -> None:
        waits.append(seconds)
        await gate.wait()

    service, worker, _ = engine(store, clock, BrokenWait, poll_interval=0.01, pause_for=pause_for)
    assert isinstance(worker, BrokenWait)
    me = await owner(service)
    task = await service.create(me, make("fine"))
    before = (
        METRICS.registry.get_sample_value(
            "reelgate_engine_loop_restarts_total", {"loop": "tracking"}
        )
        or 0
    )
    ready = Readiness(store, stale_after=60, clock=clock)
    await store.worker_seen("other", clock())  # another worker's heartbeat is fresh
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if waits:
                break
        assert waits == [pytest.approx(supervisor.RESTART_RETRY.first, rel=0.25)]
        checks = await ready.checks()
        assert checks["worker"].startswith("the tracking loop stopped")
        assert "RuntimeError" in checks["worker"]
        worker.broken = False
        gate.set()  # the back-off is over
        for _ in range(500):
            await asyncio.sleep(0.01)
            clock.advance(5)
            if (await service.get(me, task.id)).status is Status.SUCCESS:
                break
        assert (await service.get(me, task.id)).status is Status.SUCCESS  # tracked again
        assert not running.done()
        restarted = await ready.checks()
        assert "restarted 1 times" in restarted["worker"]
        clock.advance(supervisor.STEADY_S)
        await store.worker_seen("other", clock())
        assert (await ready.checks())["worker"] == "ok"
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    after = METRICS.registry.get_sample_value(
        "reelgate_engine_loop_restarts_total", {"loop": "tracking"}
    )
    assert after == before + 1


def test_fault_counts_stay_bounded() -> None:
    counter = supervisor.FaultCounter(limit=3)
    for key in "abcd":
        counter.add(key)
    assert counter["a"] == 0  # the longest-untouched is forgotten first
    assert counter.add("d") == 2


async def test_a_task_ends_even_when_the_store_fails_while_recording_its_fault(
    store: SqlStore,
) -> None:
    """Not a loop killer either: the lease is given back and the task comes round again."""
    clock = ManualClock(T0)
    flaky = FlakyStore(store)
    service, worker, up = engine(flaky, clock)
    me = await owner(service)
    bad = await service.create(me, make("raise:submit:KeyError"))
    flaky.broken["save_task"] = TypeError("the store's bug")
    await worker.tick()
    assert flaky.calls["save_task"] == 1  # recording the fault failed too
    assert worker._orphans["admission"] == {bad.id}
    del flaky.broken["save_task"]
    clock.advance(1)
    await worker.tick()  # gives the lease back first, then claims it again at once
    assert worker._orphans["admission"] == set()
    assert up.submits[bad.id] == 2


# -- the webhook sender and the media mirror -------------------------------------------------------


async def test_a_delivery_whose_handling_raises_is_a_failed_attempt_and_the_others_go_out(
    store: SqlStore,
) -> None:
    receiver = Receiver().start()
    try:
        clock = ManualClock(time.time())
        up = queue_upstream(clock, queued=1, running=1)
        service, worker = queue_engine(store, up, clock=clock)
        service._allow = LOOPBACK
        me = await owner(service)
        good = await service.create(me, queue_request(callback_url=receiver.url))
        bad = await service.create(me, queue_request(callback_url=receiver.url))
        await worker.tick()
        clock.advance(90)
        await worker.tick()

        def render(task: Task) -> dict[str, Any]:
            if task.id == bad.id:
                raise TypeError("cannot render this task")
            return {"task_id": task.id}

        hooks = WebhookSender(
            service, render, worker_id="w1", allow_networks=LOOPBACK, retry_scale=1e-6
        )
        before = faults("webhooks")
        assert await hooks.tick() == 2
        assert [r.json["data"] for r in receiver.received] == [{"id": good.id, "task_id": good.id}]
        (failing,) = await service.deliveries(me, bad.id)
        assert (failing.state, failing.attempts) == ("pending", 1)
        assert failing.log[0].error == "internal error in reelgate; it is logged"
        for _ in range(3 * MAX_ATTEMPTS):
            clock.advance(1)
            await hooks.tick()
        (failed,) = await service.deliveries(me, bad.id)
        assert (failed.state, failed.attempts) == ("failed", MAX_ATTEMPTS)
        assert faults("webhooks") - before == MAX_ATTEMPTS
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


class BuggyStorage(LocalFiles):
    """Local files, except that saving raises what no storage is expected to raise."""

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        raise KeyError(name)


async def test_a_copy_whose_handling_raises_is_a_failed_attempt(
    store: SqlStore, tmp_path: Path
) -> None:
    cdn = FileServer().start()
    try:
        cdn.files.update({"/v.mp4": b"video", "/f.png": b"png"})
        clock = ManualClock(T0)
        before = faults("mirror")
        service, mirror, me, task = await succeeded(
            store, tmp_path, cdn, clock, storage=BuggyStorage(tmp_path / "m")
        )
        assert await mirror.tick() == 2  # both copies raise; the round goes on
        assert faults("mirror") - before == 2
        for _ in range(12):
            clock.advance(3600)
            await mirror.tick()
        kept = await service.refresh(me, task.id)
        assert (kept.status, kept.media_state) == (Status.SUCCESS, "failed")
    finally:
        cdn.stop()
