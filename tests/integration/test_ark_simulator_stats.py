"""The Ark simulator's accounting over real HTTP: what engine tests and benchmarks assert on.

Creates per ``safety_identifier``, look-ups per task and how many overlapped, when each task
finishes, per-task durations, and that the cap check and callback scan stay cheap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.testing import ArkSimulator, ManualClock, serve_in_thread
from reelgate.testing.ark_simulator import SimTask
from tests.integration.test_ark_simulator import (
    KEY,
    PRO,
    TASKS,
    _Receiver,
    _wait_for,
    create,
)

OTHER = "k2"


class _CountingSim(ArkSimulator):
    """Counts status computations: the work a scan over tasks costs."""

    status_calls = 0

    def status(self, task: SimTask) -> str:
        self.status_calls += 1
        return super().status(task)


@dataclass
class Ark:
    client: httpx.Client
    clock: ManualClock
    sim: _CountingSim
    url: str

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_sim/stats").json())

    def fault(self, endpoint: str, kind: str) -> None:
        r = httpx.post(f"{self.url}/_sim/faults", json={"endpoint": endpoint, "kind": kind})
        assert r.status_code == 200


@pytest.fixture
def ark() -> Iterator[Ark]:
    clock = ManualClock()
    sim = _CountingSim(
        api_keys={KEY, OTHER},
        queued_seconds=10,
        running_seconds=20,
        clock=clock,
        timeout_hang_s=0.5,
    )
    handle = serve_in_thread(sim)
    with httpx.Client(
        base_url=handle.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ) as client:
        yield Ark(client, clock, sim, handle.url)
    handle.stop()


def test_creates_counted_per_safety_identifier(ark: Ark) -> None:
    create(ark.client, safety_identifier="rg-task_a")
    create(ark.client, safety_identifier="rg-task_b")
    create(ark.client)  # no identifier: nothing to count
    ark.fault("create", "malformed")  # the create goes through, its answer is lost ...
    lost = ark.client.post(
        TASKS,
        json={
            "model": PRO,
            "content": [{"type": "text", "text": "a boat"}],
            "safety_identifier": "rg-task_c",
        },
    )
    with pytest.raises(ValueError):  # noqa: PT011 - json's own error
        lost.json()
    create(ark.client, safety_identifier="rg-task_c")  # ... and a blind retry submits it twice
    assert ark.sim.creates_by_marker == Counter({"rg-task_a": 1, "rg-task_b": 1, "rg-task_c": 2})
    assert ark.sim.max_creates_per_marker == 2
    stats = ark.stats()
    assert set(stats) == {
        "calls",
        "creates",
        "lookup_requests",
        "creates_by_prompt",
        "max_creates_per_body",
        "max_creates_per_marker",
        "lookups_total",
        "max_lookups_per_task",
        "max_concurrent_lookups_per_task",
    }
    assert (stats["creates"], stats["max_creates_per_marker"]) == (5, 2)


def test_lookups_counted_per_task(ark: Ark) -> None:
    ids = []
    for _ in range(3):
        ids.append(create(ark.client))
        ark.clock.advance(1)  # distinct created_at: c is the newest
    a, b, c = ids
    for _ in range(2):
        assert ark.client.get(f"{TASKS}/{a}").status_code == 200
    picked = ark.client.get(TASKS, params=[("filter.task_ids", a), ("filter.task_ids", b)])
    assert {i["id"] for i in picked.json()["items"]} == {a, b}
    newest = ark.client.get(TASKS, params={"page_size": 1}).json()
    assert (newest["total"], [i["id"] for i in newest["items"]]) == (3, [c])  # one page: c only
    assert ark.client.get(f"{TASKS}/cgt-nope").status_code == 404
    other_key = {"Authorization": f"Bearer {OTHER}"}
    assert ark.client.get(f"{TASKS}/{a}", headers=other_key).status_code == 404
    assert ark.sim.lookups_by_task == Counter({a: 3, b: 1, c: 1})
    stats = ark.stats()
    assert (stats["lookups_total"], stats["max_lookups_per_task"]) == (5, 3)
    assert httpx.post(f"{ark.url}/_sim/reset").status_code == 200
    stats = ark.stats()
    assert (stats["lookups_total"], stats["max_lookups_per_task"]) == (0, 0)


def test_list_by_ids_keeps_the_order_of_the_full_list(ark: Ark) -> None:
    ids = [create(ark.client) for _ in range(8)]  # all created in the same second
    everything = [i["id"] for i in ark.client.get(TASKS).json()["items"]]
    picked = ark.client.get(TASKS, params=[("filter.task_ids", i) for i in reversed(ids)])
    assert [i["id"] for i in picked.json()["items"]] == everything == ids


def test_concurrent_lookups_of_one_task(ark: Ark) -> None:
    a, b = create(ark.client), create(ark.client)
    ark.client.get(f"{TASKS}/{a}")
    ark.client.get(TASKS, params=[("filter.task_ids", a), ("filter.task_ids", b)])
    assert ark.sim.max_concurrent_lookups_per_task == 1  # one after the other

    def hold(task_id: str) -> threading.Thread:
        """A GET of ``task_id`` that the simulator holds for timeout_hang_s."""
        calls = ark.sim.calls["get"]
        ark.fault("get", "timeout")
        thread = threading.Thread(target=ark.client.get, args=(f"{TASKS}/{task_id}",))
        thread.start()
        _wait_for(lambda: ark.sim.calls["get"] > calls)
        return thread

    held = hold(a)
    ark.client.get(f"{TASKS}/{b}")  # another task: no overlap
    assert ark.sim.max_concurrent_lookups_per_task == 1
    ark.client.get(TASKS, params=[("filter.task_ids", b), ("filter.task_ids", a)])
    assert held.is_alive()  # the list ran while the GET of ``a`` was held
    held.join()
    assert ark.sim.max_concurrent_lookups_per_task == 2
    # Both requests were let go when they ended: another overlapping pair makes 2 again, not 3.
    held = hold(a)
    ark.client.get(f"{TASKS}/{a}")
    assert held.is_alive()
    held.join()
    assert ark.stats()["max_concurrent_lookups_per_task"] == 2


def test_finished_at_and_the_task_table(ark: Ark) -> None:
    ark.sim.time_scale = 10.0  # 10 s queued + 20 s running of Ark time: 3 s of the clock
    t0 = ark.clock()
    ok = create(ark.client, safety_identifier="rg-task_ok")
    failed = create(ark.client, "x [sim:fail=OutputVideoSensitiveContentDetected]")
    expired = create(ark.client, "x [sim:expire]")  # expires as its queue time runs out
    late = create(ark.client, "x [sim:queued=7200]", execution_expires_after=3600)
    cancelled = create(ark.client)
    assert ark.client.delete(f"{TASKS}/{cancelled}").status_code == 200
    expected = {ok: t0 + 3, failed: t0 + 3, expired: t0 + 1, late: t0 + 360, cancelled: None}
    assert {i: ark.sim.finished_at(i) for i in expected} == expected
    assert ark.sim.finished_at("cgt-nope") is None

    def status(task_id: str) -> str:
        return str(ark.client.get(f"{TASKS}/{task_id}").json()["status"])

    ark.clock.set(t0 + 2.99)
    assert (status(ok), status(failed), status(expired)) == ("running", "running", "expired")
    ark.clock.set(t0 + 3)
    assert (status(ok), status(failed)) == ("succeeded", "failed")
    ark.clock.set(t0 + 1000)  # past 7220 s of Ark time: an expired task stays expired
    assert status(late) == "expired"
    rows = httpx.get(f"{ark.url}/_sim/tasks").json()["items"]
    assert [r["id"] for r in rows] == [ok, failed, expired, late, cancelled]
    assert rows[0] == {
        "id": ok,
        "status": "succeeded",
        "created_at": t0,
        "finished_at": t0 + 3,
        "marker": "rg-task_ok",
    }
    assert [(r["status"], r["finished_at"], r["marker"]) for r in rows[1:]] == [
        ("failed", t0 + 3, None),
        ("expired", t0 + 1, None),
        ("expired", t0 + 360, None),
        ("cancelled", None, None),
    ]


def test_durations_from_a_callable_markers_win(ark: Ark) -> None:
    bodies: list[dict[str, Any]] = []

    def durations(body: dict[str, Any]) -> tuple[float, float]:
        bodies.append(body)
        return 5.0, 7.0

    ark.sim.durations = durations
    t0 = ark.clock()
    drawn = create(ark.client)
    marked = create(ark.client, "x [sim:queued=1]")
    rejected = ark.client.post(
        TASKS, json={"model": PRO, "content": [{"type": "text", "text": "[sim:reject]"}]}
    )
    assert rejected.status_code == 400
    assert [b["content"][0]["text"] for b in bodies] == ["a boat", "x [sim:queued=1]"]
    assert (ark.sim.finished_at(drawn), ark.sim.finished_at(marked)) == (t0 + 12, t0 + 8)
    ark.clock.set(t0 + 4.99)
    assert ark.client.get(f"{TASKS}/{drawn}").json()["status"] == "queued"
    ark.clock.set(t0 + 5)
    assert ark.client.get(f"{TASKS}/{drawn}").json()["status"] == "running"


def test_queued_cap_frees_slots_as_tasks_leave_the_queue(ark: Ark) -> None:
    ids = [create(ark.client) for _ in range(120)]
    body = {"model": PRO, "content": [{"type": "text", "text": "x"}]}
    assert ark.client.post(TASKS, json=body).status_code == 429
    other_key = {"Authorization": f"Bearer {OTHER}"}
    assert ark.client.post(TASKS, json=body, headers=other_key).status_code == 200  # per key
    assert ark.client.delete(f"{TASKS}/{ids[0]}").status_code == 200
    create(ark.client)  # the cancelled task's slot
    assert ark.client.post(TASKS, json=body).status_code == 429
    ark.clock.advance(10)  # all of them start running
    create(ark.client)


def test_queued_cap_check_does_not_scan_every_task() -> None:
    clock = ManualClock()
    sim = _CountingSim(api_keys={KEY}, queued_seconds=0.5, running_seconds=1, clock=clock)
    body = {"model": PRO, "content": [{"type": "text", "text": "x"}]}
    n = 5000
    for _ in range(n):
        sim.create(KEY, body)
        clock.advance(1)  # each task has left the queue before the next create
    assert sim.status_calls < 2 * n  # a scan of every task would be n * n / 2


def test_callback_scan_drops_tasks_with_nothing_left_to_post(ark: Ark) -> None:
    received: list[tuple[str, str]] = []

    async def hook(request: Request) -> Response:
        payload = await request.json()
        received.append((payload["id"], payload["status"]))
        return Response()

    receiver = serve_in_thread(
        _Receiver(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    )
    try:
        hook_url = f"{receiver.url}/hook"
        done = create(ark.client, callback_url=hook_url)
        plain = create(ark.client)
        assert done in ark.sim.callback_watch
        assert plain not in ark.sim.callback_watch  # no callback_url: never scanned
        cancelled = create(ark.client, callback_url=hook_url)
        assert ark.client.delete(f"{TASKS}/{cancelled}").status_code == 200
        ark.clock.advance(30)
        _wait_for(lambda: {(done, "succeeded"), (cancelled, "cancelled")} <= set(received))
        assert not ark.sim.callback_watch
    finally:
        receiver.stop()
    idle = ark.sim.status_calls
    time.sleep(0.2)  # several ticks of the sender: none of them looks at a finished task
    assert ark.sim.status_calls == idle
