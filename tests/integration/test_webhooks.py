"""The webhook sender against a real receiver on loopback, on a real SQLite file and an injected
clock: outbox written with the task's end, signatures, the retry schedule, 410, SSRF, restarts."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import pytest
import standardwebhooks
from openai import InvalidWebhookSignatureError, OpenAI

from reelgate.core import webhooks
from reelgate.core.errors import InvalidRequest
from reelgate.core.lifecycle import Status, Task
from reelgate.engine.webhooks import WebhookSender
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from tests.integration.test_engine import owner
from tests.integration.test_engine_queue import engine, request, upstream
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def render(task: Task) -> dict[str, Any]:
    return {"task_id": task.id, "status": task.status.value}


def sender(service: VideoService, **kw: Any) -> WebhookSender:
    return WebhookSender(service, render, worker_id="w1", **{"allow_networks": LOOPBACK, **kw})


async def finished_task(store: SqlStore, clock: ManualClock, **create: Any) -> tuple[Any, Any, Any]:
    """A service (loopback allowed), its token, and one task run to success."""
    up = upstream(clock, queued=1, running=1)
    service, worker = engine(store, up, clock=clock)
    service._allow = LOOPBACK
    me = await owner(service)
    task = await service.create(me, request(**create))
    await worker.tick()
    clock.advance(90)
    await worker.tick()
    assert (await service.get(me, task.id)).status is Status.SUCCESS
    return service, me, task


async def test_a_finished_task_is_delivered_signed(store: SqlStore, receiver: Receiver) -> None:
    clock = ManualClock(time.time())
    service, me, task = await finished_task(store, clock, callback_url=receiver.url)
    endpoint = await service.webhook(me)
    assert await sender(service).tick() == 1
    (got,) = receiver.received
    payload = standardwebhooks.Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload["type"] == "video.completed"
    assert payload["data"] == {"id": task.id, "task_id": task.id, "status": "success"}
    assert got.headers["webhook-id"] == payload["id"]
    (delivery,) = await service.deliveries(me, task.id)
    assert (delivery.state, delivery.attempts, delivery.target) == ("delivered", 1, "task")
    assert delivery.log[0].status == 200
    assert await sender(service).tick() == 0  # nothing is sent twice


async def test_an_openai_style_handler_gets_the_video_id(
    store: SqlStore, receiver: Receiver
) -> None:
    # OpenAI's event shape: what `client.webhooks.unwrap` hands a handler is `event.data.id`.
    clock = ManualClock(time.time())  # unwrap checks the timestamp against the real clock
    service, me, task = await finished_task(store, clock, callback_url=receiver.url)
    endpoint = await service.webhook(me)
    assert await sender(service).tick() == 1
    (got,) = receiver.received
    event = OpenAI(api_key="unused").webhooks.unwrap(got.body, got.headers, secret=endpoint.secret)
    assert (event.id, event.object, event.type) == (  # type: ignore[comparison-overlap]
        got.headers["webhook-id"],
        "event",
        "video.completed",
    )
    assert event.data.id == task.id
    assert event.data.task_id == task.id  # type: ignore[attr-defined]  # reelgate's fields stay
    with pytest.raises(InvalidWebhookSignatureError):
        OpenAI(api_key="unused").webhooks.unwrap(
            got.body, got.headers, secret=webhooks.new_secret()
        )


async def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_attempts_bound(
    store: SqlStore,
) -> None:
    # Found by the chaos suite: the timeout bounded each read, not the attempt, so a slow
    # receiver could hold a delivery past the sender's lease.
    slow = Receiver(trickle_s=5.0).start()
    try:
        clock = ManualClock(time.time())
        service, me, task = await finished_task(store, clock, callback_url=slow.url)
        started = time.monotonic()
        assert await sender(service, timeout_s=0.5).tick() == 1
        assert time.monotonic() - started < 3.0  # not the 5 s the answer would take
        (delivery,) = await service.deliveries(me, task.id)
        assert delivery.state == "pending"  # retried later, like any other failure
        assert delivery.log[0].error == "no answer within 0.5 s"
    finally:
        slow.stop()


async def test_failures_are_retried_on_the_schedule_with_one_id(
    store: SqlStore, receiver: Receiver
) -> None:
    clock = ManualClock(time.time())
    service, me, task = await finished_task(store, clock)
    await service.set_webhook(me, receiver.url)  # the token's endpoint this time
    cancelled_me = await service.create(me, request())
    await service.cancel(me, cancelled_me.id)  # a second event: video.cancelled
    receiver.answers.extend([(500, {}), (503, {})])
    hooks = sender(service)
    # Only the cancel happened after the endpoint was set.
    assert await hooks.tick() == 1
    clock.advance(4)
    assert await hooks.tick() == 0  # the second attempt comes 5 s after the first
    clock.advance(1)
    assert await hooks.tick() == 1
    clock.advance(299)
    assert await hooks.tick() == 0
    clock.advance(1)
    assert await hooks.tick() == 1
    ids = {r.headers["webhook-id"] for r in receiver.received}
    bodies = {r.body for r in receiver.received}
    assert len(receiver.received) == 3
    assert len(ids) == len(bodies) == 1  # the same delivery: same id, same bytes
    (delivery,) = await service.deliveries(me, cancelled_me.id)
    assert delivery.event == "video.cancelled"
    assert [a.status for a in delivery.log] == [500, 503, 200]
    assert delivery.state == "delivered"
    assert await service.deliveries(me, task.id) == []


async def test_410_disables_the_endpoint(store: SqlStore, receiver: Receiver) -> None:
    clock = ManualClock(time.time())
    service, me, _ = await finished_task(store, clock)
    await service.set_webhook(me, receiver.url)
    receiver.answers.append((410, {}))
    for _ in range(2):
        t = await service.create(me, request())
        await service.cancel(me, t.id)
    hooks = sender(service)
    first, second = sorted(
        await store.claim_deliveries(clock(), 10, "w1", 60), key=lambda d: d.created_at
    )
    await hooks.deliver(first)  # 410 Gone
    endpoint = await service.webhook(me)
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    await hooks.deliver(second)  # its endpoint is disabled now: settled, not sent
    assert len(receiver.received) == 1
    (settled,) = await service.deliveries(me, second.task_id)
    assert (settled.state, settled.attempts) == ("disabled", 0)
    later = await service.create(me, request())
    await service.cancel(me, later.id)
    assert await service.deliveries(me, later.id) == []  # a disabled endpoint gets no more
    await service.set_webhook(me, receiver.url)  # setting it again re-enables it
    assert (await service.webhook(me)).enabled


async def test_a_delivery_survives_a_crash_of_its_sender(
    store: SqlStore, receiver: Receiver
) -> None:
    clock = ManualClock(time.time())
    service, _, _ = await finished_task(store, clock, callback_url=receiver.url)
    claimed = await store.claim_deliveries(clock(), 10, "dead-worker", 120)
    assert len(claimed) == 1  # ... and the worker dies before sending
    assert await sender(service).tick() == 0  # leased
    clock.advance(121)
    assert await sender(service).tick() == 1
    assert len(receiver.received) == 1
    assert receiver.received[0].headers["webhook-id"] == claimed[0].id


async def test_replay_sends_the_same_delivery_again(store: SqlStore, receiver: Receiver) -> None:
    clock = ManualClock(time.time())
    service, me, task = await finished_task(store, clock, callback_url=receiver.url)
    await sender(service).tick()
    (delivery,) = await service.deliveries(me, task.id)
    replayed = await service.replay(me, task.id, delivery.id)
    assert replayed.state == "pending"
    await sender(service).tick()
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    with pytest.raises(Exception, match="no delivery"):
        await service.replay(me, task.id, "msg_nope")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
        "http://192.168.0.1/hook",
    ],
)
async def test_private_callback_urls_are_refused(store: SqlStore, url: str) -> None:
    clock = ManualClock(time.time())
    service, _ = engine(store, upstream(clock), clock=clock)  # no allowlist: the default
    me = await owner(service)
    with pytest.raises(InvalidRequest) as err:
        await service.create(me, request(callback_url=url))
    assert err.value.code == "url_not_allowed"
    assert err.value.param == "callback_url"
    with pytest.raises(InvalidRequest):
        await service.set_webhook(me, url)


async def test_the_sender_checks_addresses_again_and_follows_no_redirect(
    store: SqlStore, receiver: Receiver
) -> None:
    clock = ManualClock(time.time())
    service, me, task = await finished_task(store, clock, callback_url=receiver.url)
    strict = sender(service, allow_networks=())  # the address became private since create
    await strict.tick()
    assert receiver.received == []
    (delivery,) = await service.deliveries(me, task.id)
    assert delivery.state == "pending"
    assert "private" in delivery.log[0].error
    # A redirect (here to a private address) is a failed attempt, never followed.
    receiver.answers.append((302, {"Location": "http://169.254.169.254/"}))
    clock.advance(5)
    await sender(service).tick()
    (delivery,) = await service.deliveries(me, task.id)
    assert delivery.log[-1].status == 302
    assert delivery.state == "pending"
    assert len(receiver.received) == 1
