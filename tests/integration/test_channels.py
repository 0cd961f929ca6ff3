"""Channels in the engine, on a real SQLite file with in-memory upstream accounts and an injected
clock: selection by priority then weight, failover on "this account can't" (and not on "this
request is bad"), stickiness, health (disable, cool-down, probe) and model lists."""

from __future__ import annotations

import random

import pytest

from reelgate.core.channels import AdmissionCaps, Channel, ChannelState
from reelgate.core.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamUnavailable,
)
from reelgate.core.lifecycle import Status
from reelgate.core.request import VideoRequest
from reelgate.engine.worker import Worker
from reelgate.providers.base import (
    Builder,
    ChannelDeclaration,
    Credential,
    Provider,
    ProviderSpec,
)
from reelgate.service import VideoService
from reelgate.service.channels import ChannelBook
from reelgate.store.sql import SqlStore
from reelgate.testing import Fault, FaultKind, InMemoryProvider, ManualClock, memory_model
from tests.integration.test_engine import owner

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def account(clock: ManualClock, name: str) -> InMemoryProvider:
    """An in-memory upstream account serving mem-1 and mem-2 (its submits, probes and faults
    scripted by each test)."""
    return InMemoryProvider(
        clock,
        name="mem",
        channel=name,
        models=[memory_model("mem-1", "mem"), memory_model("mem-2", "mem")],
    )


AUTH = UpstreamError(
    "Ark AuthenticationError: The API key is invalid.", code="upstream_auth_failed"
)
OVERDUE = UpstreamError("Ark AccountOverdueError: overdue", code="upstream_account_error")
QUOTA = UpstreamUnavailable("Ark QuotaExceeded", code="upstream_quota_exceeded", retry_after=20.0)
SERVER = UpstreamUnavailable("Ark 500: InternalServiceError", code="upstream_unavailable")
MODERATION = InvalidRequest("Ark InputTextSensitiveContentDetected", code="content_moderation")


async def rig(
    store: SqlStore, clock: ManualClock, *accounts: tuple[InMemoryProvider, Channel], seed: int = 7
) -> tuple[VideoService, Worker, ChannelBook]:
    by_name = {a.channel: a for a, _ in accounts}

    def make(channel: Channel, _key: str, _options: object, _ctx: object) -> Provider:
        return by_name[channel.name]

    book = ChannelBook(
        store,
        specs={"mem": mem_spec(make)},
        configured=[ChannelDeclaration(c, f"key-{c.name}") for _, c in accounts],
        clock=clock,
        probe_interval_s=300,
    )
    await book.start()
    service = VideoService(store, channels=book, clock=clock, monotonic=clock)
    worker = Worker(service, clock=clock, rng=random.Random(seed))  # noqa: S311
    return service, worker, book


def mem_spec(build: Builder) -> ProviderSpec:
    """A declaration of the in-memory provider these tests script."""
    return ProviderSpec(
        name="mem",
        title="in-memory test upstream",
        catalogue=lambda: [memory_model("mem-1", "mem"), memory_model("mem-2", "mem")],
        build=build,
        credential=Credential("a test key"),
        regions={"local": "http://mem.invalid"},
        default_region="local",
    )


def chan(name: str, **kw: object) -> Channel:
    return Channel(name=name, provider="mem", **kw)  # type: ignore[arg-type]


def request(model: str = "mem-1") -> VideoRequest:
    return VideoRequest(model=model, prompt="a cat")


async def run(worker: Worker, clock: ManualClock, rounds: int = 3, step: float = 1.0) -> None:
    for _ in range(rounds):
        await worker.tick()
        clock.advance(step)


async def test_higher_priority_first_and_lower_only_beyond_its_room(store: SqlStore) -> None:
    clock = ManualClock()
    main, spare = account(clock, "main"), account(clock, "spare")
    service, worker, _ = await rig(
        store,
        clock,
        (main, chan("main", priority=10, caps=AdmissionCaps(max_in_flight=3))),
        (spare, chan("spare", priority=0)),
    )
    me = await owner(service)
    for _ in range(5):
        await service.create(me, request())
    await worker.tick()
    assert (len(main.submits), len(spare.submits)) == (3, 2)


async def test_weights_share_tasks_within_a_priority(store: SqlStore) -> None:
    clock = ManualClock()
    heavy, light = account(clock, "heavy"), account(clock, "light")
    service, worker, _ = await rig(
        store, clock, (heavy, chan("heavy", weight=3)), (light, chan("light", weight=1))
    )
    me = await owner(service)
    for _ in range(200):
        await service.create(me, request())
    await worker.tick()
    assert len(heavy.submits) + len(light.submits) == 200
    assert (len(heavy.submits), len(light.submits)) == (150, 50)


async def test_an_auth_error_disables_the_channel_and_the_task_moves_on(store: SqlStore) -> None:
    clock = ManualClock()
    bad, good = account(clock, "bad"), account(clock, "good")
    bad.errors = [AUTH]
    service, worker, _book = await rig(
        store, clock, (bad, chan("bad", priority=1)), (good, chan("good", priority=0))
    )
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock)
    moved = await service.get(me, task.id)
    assert moved.channel == "good"
    assert moved.upstream_id is not None
    assert (bad.submits, good.submits) == ([], [task.id])
    row = await store.get_channel("bad")
    assert row is not None
    assert row.channel.state(clock()) is ChannelState.DISABLED
    assert row.channel.disabled_by == "health"
    assert "upstream_auth_failed" in row.channel.disabled_reason
    # New tasks skip the disabled channel without trying it.
    second = await service.create(me, request())
    await run(worker, clock)
    assert good.submits == [task.id, second.id]
    # Sticky: the task is looked up on the channel that created it, and only there.
    clock.advance(60)
    await run(worker, clock)
    assert (await service.get(me, task.id)).status is Status.SUCCESS
    assert bad.lookups == 0
    assert good.lookups >= 1


async def test_a_disabled_channel_comes_back_when_its_probe_succeeds(store: SqlStore) -> None:
    clock = ManualClock()
    acct = account(clock, "only")
    acct.errors = [OVERDUE]
    acct.probe_error = OVERDUE
    service, worker, _ = await rig(store, clock, (acct, chan("only")))
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock)
    failed = await service.get(me, task.id)
    assert (failed.status, failed.error_code) == (Status.FAILURE, "upstream_account_error")
    assert "no other channel" in failed.error_message
    with pytest.raises(UpstreamUnavailable) as refused:
        await service.create(me, request())  # every channel is disabled: refused at once
    assert refused.value.code == "no_channel_available"
    clock.advance(301)
    await run(worker, clock, rounds=1)
    assert acct.probes == 1  # still overdue: stays disabled, next probe later
    row = await store.get_channel("only")
    assert row is not None
    assert not row.channel.enabled
    acct.probe_error = None
    clock.advance(301)
    await run(worker, clock, rounds=1)
    assert acct.probes == 2
    row = await store.get_channel("only")
    assert row is not None
    assert row.channel.enabled
    assert row.channel.disabled_reason == ""
    later = await service.create(me, request())
    await run(worker, clock)
    assert acct.submits == [later.id]


async def test_a_429_cools_the_channel_down_and_a_peer_takes_the_task(store: SqlStore) -> None:
    clock = ManualClock()
    busy, free = account(clock, "busy"), account(clock, "free")
    busy.errors = [QUOTA]
    service, worker, _ = await rig(
        store, clock, (busy, chan("busy", priority=1)), (free, chan("free", priority=0))
    )
    me = await owner(service)
    first = await service.create(me, request())
    await run(worker, clock, rounds=2)
    assert free.submits == [first.id]
    row = await store.get_channel("busy")
    assert row is not None
    assert row.channel.state(clock()) is ChannelState.COOLING
    assert row.channel.enabled  # cooling is not disabled
    during = await service.create(me, request())
    await run(worker, clock, rounds=2)
    assert free.submits == [first.id, during.id]  # still cooling: the peer takes new work
    clock.advance(30)
    after = await service.create(me, request())
    await run(worker, clock, rounds=2)
    assert busy.submits == [after.id]  # rested: the preferred channel is back


async def test_a_5xx_is_reconciled_on_its_channel_before_the_task_moves(store: SqlStore) -> None:
    clock = ManualClock()
    flaky, steady = account(clock, "flaky"), account(clock, "steady")
    flaky.errors = [SERVER]
    service, worker, _ = await rig(
        store, clock, (flaky, chan("flaky", priority=1)), (steady, chan("steady", priority=0))
    )
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock, rounds=20, step=5.0)
    done = await service.get(me, task.id)
    assert done.channel == "steady"
    assert done.upstream_id is not None
    assert flaky.reconciles == 1  # asked "did my failed attempt create it?" before moving
    assert (flaky.submits, steady.submits) == ([], [task.id])


async def test_a_5xx_that_did_create_the_task_keeps_it_where_it_is(store: SqlStore) -> None:
    clock = ManualClock()
    flaky, steady = account(clock, "flaky"), account(clock, "steady")
    flaky.inject(Fault("create", FaultKind.RESET))  # created upstream, then the answer lost
    service, worker, _ = await rig(
        store, clock, (flaky, chan("flaky", priority=1)), (steady, chan("steady", priority=0))
    )
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock, rounds=20, step=5.0)
    done = await service.get(me, task.id)
    assert done.channel == "flaky"
    assert done.upstream_id is not None
    assert (flaky.submits, steady.submits) == ([task.id], [])  # created once, adopted


async def test_a_bad_request_fails_the_task_and_no_channel_is_blamed(store: SqlStore) -> None:
    clock = ManualClock()
    first, second = account(clock, "first"), account(clock, "second")
    first.errors = [MODERATION]
    service, worker, _ = await rig(
        store, clock, (first, chan("first", priority=1)), (second, chan("second"))
    )
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock)
    failed = await service.get(me, task.id)
    assert (failed.status, failed.error_code) == (Status.FAILURE, "content_moderation")
    assert second.submits == []  # not resent elsewhere
    row = await store.get_channel("first")
    assert row is not None
    assert row.channel.state(clock()) is ChannelState.ACTIVE


async def test_every_channel_refusing_the_model_ends_the_task(store: SqlStore) -> None:
    clock = ManualClock()
    a, b = account(clock, "a"), account(clock, "b")
    unavailable = UpstreamError("Ark ModelNotOpen", code="upstream_model_unavailable")
    a.errors, b.errors = [unavailable], [unavailable]
    service, worker, _ = await rig(store, clock, (a, chan("a")), (b, chan("b")))
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock, rounds=4)
    failed = await service.get(me, task.id)
    assert (failed.status, failed.error_code) == (Status.FAILURE, "upstream_model_unavailable")
    # The model is not open there, but the accounts work: both stay enabled.
    for name in ("a", "b"):
        row = await store.get_channel(name)
        assert row is not None
        assert row.channel.enabled


async def test_a_channel_takes_only_the_models_it_lists(store: SqlStore) -> None:
    clock = ManualClock()
    general, special = account(clock, "general"), account(clock, "special")
    service, worker, _ = await rig(
        store,
        clock,
        (general, chan("general", models=("mem-1",))),
        (special, chan("special", models=("mem-2",), priority=5)),
    )
    me = await owner(service)
    one = await service.create(me, request("mem-1"))
    two = await service.create(me, request("mem-2"))
    await run(worker, clock)
    assert (general.submits, special.submits) == ([one.id], [two.id])


async def test_an_admin_disabled_channel_still_tracks_its_tasks(store: SqlStore) -> None:
    clock = ManualClock()
    old, new = account(clock, "old"), account(clock, "new")
    service, worker, book = await rig(
        store, clock, (old, chan("old", priority=1)), (new, chan("new"))
    )
    me = await owner(service)
    task = await service.create(me, request())
    await run(worker, clock, rounds=1)
    assert old.submits == [task.id]
    await book.disable("old", "maintenance", by="admin")
    row = await store.get_channel("old")
    assert row is not None
    assert row.channel.next_probe_at is None
    later = await service.create(me, request())
    clock.advance(60)
    await run(worker, clock)
    assert (await service.get(me, task.id)).status is Status.SUCCESS
    assert old.lookups >= 1  # followed on the channel that created it
    assert new.submits == [later.id]
    await book.enable("old")
    assert (await store.get_channel("old")).channel.enabled  # type: ignore[union-attr]


async def test_channels_from_settings_keep_their_health_across_restarts(store: SqlStore) -> None:
    clock = ManualClock()
    acct = account(clock, "kept")
    _, _, book = await rig(store, clock, (acct, chan("kept", weight=2)))
    await book.disable("kept", "upstream_auth_failed: bad key")
    # A restart with a changed definition: the weight follows settings, the health stays.
    _, _, again = await rig(store, clock, (acct, chan("kept", weight=5)))
    row = await store.get_channel("kept")
    assert row is not None
    assert (row.channel.weight, row.channel.enabled) == (5, False)
    assert row.channel.disabled_reason == "upstream_auth_failed: bad key"
    await book.close()
    await again.close()


async def test_a_channel_that_cannot_be_built_does_not_take_the_others_down(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    good = account(clock, "good")

    def make(channel: Channel, key: str, _options: object, _ctx: object) -> Provider:
        if channel.name == "broken":
            raise ValueError("a key no header can carry")
        return good

    book = ChannelBook(
        store,
        specs={"mem": mem_spec(make)},
        configured=[
            ChannelDeclaration(chan("broken"), "k1"),
            ChannelDeclaration(chan("good"), "k2"),
        ],
        clock=clock,
    )
    registry = await book.start()
    assert [c.name for c in registry.channels("mem")] == ["good"]
    assert not book.usable_here("broken")
    await book.close()
