"""Prices, pre-charges, settlement and refunds on a real SQLite file (and PostgreSQL), with the
Ark simulator over real HTTP: in-process on an injected clock, and behind a live gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.core import pricing
from reelgate.core.errors import ConfigError, PaymentRequired
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Status, Task
from reelgate.core.pricing import PriceTable
from reelgate.core.request import VideoRequest, parse_seed_body
from reelgate.engine.worker import Worker
from reelgate.providers.ark.provider import ArkProvider
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore, open_store
from reelgate.testing import ArkSimulator, ManualClock, serve_in_thread
from tests.conftest import LiveServer, server_env
from tests.integration.test_engine_queue import upstream
from tests.pg import _drop, _pg_database, pg_url
from tests.unit.test_pricing import PRO, TABLE, V2, V15, M

pytestmark = pytest.mark.anyio

KEY = "ark-billing-key"
GRANT = 10**9


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def charges(store: SqlStore, owner: ApiToken) -> dict[str, dict[str, dict[str, Any]]]:
    """The token's ledger rows per task and kind."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in await store.ledger_entries(owner.id, limit=1000):
        out.setdefault(row["task_id"] or "", {})[row["kind"]] = row
    return out


@contextlib.asynccontextmanager
async def ark_rig(
    store: SqlStore, clock: ManualClock, **service_kw: Any
) -> AsyncIterator[tuple[VideoService, Worker]]:
    """A service and worker on ``clock`` whose Seedance models go to an Ark simulator (real
    HTTP on loopback) running on the same clock."""
    sim = ArkSimulator(api_keys={KEY}, queued_seconds=2, running_seconds=3, clock=clock)
    handle = serve_in_thread(sim)
    registry = Registry([ArkProvider(KEY, base_url=handle.base_url)])
    ark_only = {m: rules for m, rules in TABLE.items() if not m.startswith("sandbox")}
    try:
        service = VideoService(
            store,
            registry,
            prices=PriceTable.parse(ark_only),
            clock=clock,
            monotonic=clock,
            **service_kw,
        )
        yield service, Worker(service, clock=clock)
    finally:
        await registry.close()
        handle.stop()


async def until_done(
    service: VideoService, worker: Worker, clock: ManualClock, owner: ApiToken
) -> None:
    """Run the worker on the injected clock until the token has no unfinished task."""
    for _ in range(40):
        await worker.tick()
        unfinished = [
            t for t in await service.store.list_tasks(owner.id, limit=100) if not t.status.terminal
        ]
        if not unfinished:
            return
        clock.advance(3)
    raise AssertionError("tasks did not finish")


@pytest.mark.parametrize(
    ("dimension", "body", "price"),
    [
        ("resolution (in-prompt flag)", {"model": V15, "prompt": "a fox --rs 1080p --rt 16:9"}, 16),
        ("flex tier", {"model": PRO, "prompt": "a fox", "metadata": {"service_tier": "flex"}}, 7.5),
        ("silent", {"model": V15, "prompt": "a fox", "metadata": {"generate_audio": False}}, 8),
        (
            "flex and silent",
            {
                "model": V15,
                "prompt": "a fox --rs 480p",
                "metadata": {"service_tier": "flex", "generate_audio": False},
            },
            4,
        ),
        ("adaptive ratio, auto duration", {"model": V2, "prompt": "a fox", "duration": -1}, 46),
    ],
)
async def test_a_success_is_settled_to_its_usage(
    store: SqlStore, dimension: str, body: dict[str, Any], price: float
) -> None:
    clock = ManualClock()
    async with ark_rig(store, clock) as (service, worker):
        owner, _ = await service.create_token("t")
        await service.store.change_quota(owner.id, clock(), grant=GRANT)
        request = parse_seed_body(body)
        quote, _ = await service.quote(owner, request)
        task = await service.create(owner, request)
        assert quote is not None
        assert quote.rule.price == int(price * M), dimension
        await until_done(service, worker, clock, owner)
        done = await service.get(owner, task.id)
        assert done.status is Status.SUCCESS
        assert done.usage_tokens is not None
        assert done.usage_tokens > 0
        rows = (await charges(service.store, owner))[task.id]
        assert rows["precharge"]["amount"] == -quote.amount  # quote equals pre-charge
        cost = pricing.ceil_div(done.usage_tokens * int(price * M), M)
        assert rows["settle"]["amount"] == quote.amount - cost
        assert rows["settle"]["quantity"] == done.usage_tokens
        assert (await service.store.balance(owner.id)).amount == GRANT - cost


async def test_failure_cancel_and_expiry_are_refunded_in_full(store: SqlStore) -> None:
    clock = ManualClock()
    async with ark_rig(store, clock, max_task_seconds=600) as (service, worker):
        owner, _ = await service.create_token("t")
        await service.store.change_quota(owner.id, clock(), grant=GRANT)

        async def make(prompt: str) -> Task:
            return await service.create(owner, VideoRequest(model=V15, prompt=prompt))

        failed = await make("a fox [sim:fail]")
        expired = await make("a fox [sim:expire]")
        waiting = await make("cancelled while waiting in reelgate")
        await service.cancel(owner, waiting.id)
        queued = await make("cancelled while queued upstream [sim:queued=100000]")
        await worker.tick()  # submits the rest
        assert (await service.get(owner, queued.id)).upstream_id is not None
        await service.cancel(owner, queued.id)
        await until_done(service, worker, clock, owner)
        codes = {}
        rows = await charges(service.store, owner)
        for task in (failed, expired, waiting, queued):
            done = await service.get(owner, task.id)
            codes[task.id] = done.error_code
            assert done.status is Status.FAILURE
            assert rows[task.id]["refund"]["amount"] == -rows[task.id]["precharge"]["amount"] > 0
            assert "settle" not in rows[task.id]
        assert [codes[t.id] for t in (failed, expired, waiting, queued)] == [
            "content_moderation",
            "expired",
            "cancelled",
            "cancelled",
        ]
        assert (await service.store.balance(owner.id)).amount == GRANT


async def test_a_task_past_its_deadline_is_refunded(store: SqlStore) -> None:
    clock = ManualClock()
    up = upstream(clock, queued=10**6)  # accepted upstream, never starts
    service = VideoService(
        store,
        Registry([up]),
        prices=PriceTable.parse({"mem-1": {"per_second": 70}}),
        max_task_seconds=600,
        clock=clock,
        monotonic=clock,
    )
    worker = Worker(service, clock=clock)
    owner, _ = await service.create_token("t")
    await store.change_quota(owner.id, clock(), grant=1000)
    task = await service.create(owner, VideoRequest(model="mem-1", prompt="x", duration=3))
    await worker.tick()
    assert up.submits == [task.id]
    assert (await store.balance(owner.id)).amount == 1000 - 210
    clock.advance(601)  # the injected clock passes the deadline; nothing sleeps
    await worker.tick()
    done = await service.get(owner, task.id)
    assert (done.status, done.error_code) == (Status.FAILURE, "timeout")
    assert (await charges(store, owner))[task.id]["refund"]["amount"] == 210
    assert (await store.balance(owner.id)).amount == 1000


async def test_a_short_balance_is_refused_with_nothing_created_or_charged(
    store: SqlStore,
) -> None:
    clock = ManualClock()
    async with ark_rig(store, clock) as (service, _):
        owner, _ = await service.create_token("t")
        request = VideoRequest(model=V2, prompt="a fox", metadata={"ratio": "16:9"})
        cost = 108_900 * 46
        _, balance = await service.quote(owner, request)
        assert balance == pricing.Balance(0, False)
        await service.create(owner, request)  # no quota set: unlimited, but charged
        assert (await service.store.balance(owner.id)).amount == -cost
        await service.store.change_quota(owner.id, clock(), set_to=cost - 1, note="top-up")
        with pytest.raises(PaymentRequired) as refused:
            await service.create(owner, request, idempotency_key="k1")
        assert (refused.value.http_status, refused.value.code) == (402, "insufficient_quota")
        assert await service.store.balance(owner.id) == pricing.Balance(cost - 1, True)
        assert len(await service.store.list_tasks(owner.id, limit=10)) == 1
        await service.store.change_quota(owner.id, clock(), grant=1)
        first = await service.create(owner, request, idempotency_key="k1")  # the key was free
        again = await service.create(owner, request, idempotency_key="k1")
        assert again.id == first.id
        assert (await service.store.balance(owner.id)).amount == 0  # charged once
        with pytest.raises(PaymentRequired):
            await service.create(owner, request)


async def test_the_database_refuses_a_second_closing_entry(store: SqlStore) -> None:
    clock = ManualClock()
    service = VideoService(
        store,
        Registry([upstream(clock)]),
        prices=PriceTable.parse({"mem-1": {"per_task": 40}}),
        clock=clock,
    )
    owner, _ = await service.create_token("t")
    task = await service.create(owner, VideoRequest(model="mem-1", prompt="x"))
    done = await service.fail(task, "upstream_failed", "gone")
    # A buggy or confused writer asks for the settlement again, even as a success.
    for again in (done, dataclasses.replace(done, status=Status.SUCCESS, usage_tokens=1)):
        assert await store.save_task(again, again.version, settle_at=clock())
    rows = (await charges(store, owner))[task.id]
    assert set(rows) == {"precharge", "refund"}
    assert (await store.balance(owner.id)).amount == 0


async def test_tasks_from_before_billing_and_free_models_settle_nothing(
    tmp_path: Path,
) -> None:
    from alembic import command

    from reelgate.store.sql import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = await open_store(url)
    async with old._engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_alembic_config(c), "0007"))
        await conn.exec_driver_sql(
            "INSERT INTO api_tokens (id, name, prefix, token_hash, created_at) "
            "VALUES ('tok_1', 'a', 'rg_x', 'h', 1)"
        )
        await conn.exec_driver_sql(
            "INSERT INTO tasks (id, owner_id, provider, model, request, status, submit_time, "
            "next_poll_at) VALUES ('t_old', 'tok_1', 'mem', 'mem-1', '{}', 'in_progress', 1, 0)"
        )
    await old.close()
    store = await open_store(url)
    try:
        await store.migrate()
        clock = ManualClock()
        priced = VideoService(
            store,
            Registry([upstream(clock)]),
            prices=PriceTable.parse({"mem-1": {"per_task": 5}}),
            clock=clock,
        )
        old_task = await store.find_task("t_old")
        assert old_task is not None
        await priced.fail(old_task, "upstream_failed", "gone")
        free = VideoService(store, Registry([upstream(clock)]), clock=clock)
        owner = next(iter(await store.list_tokens()))
        task = await free.create(owner, VideoRequest(model="mem-1", prompt="x"))
        await free.fail(task, "upstream_failed", "gone")
        assert await store.ledger_entries(None, limit=10) == []
        assert (await store.balance("tok_1")).amount == 0
        with pytest.raises(ConfigError, match="no model 'mem-2'"):
            VideoService(
                store,
                Registry([upstream(clock)]),
                prices=PriceTable.parse({"mem-2": {"per_task": 5}}),
            )
    finally:
        await store.close()


@pytest.mark.postgres
async def test_concurrent_creates_and_settlements_on_postgresql() -> None:
    name = await _pg_database()
    stores = [await open_store(pg_url(name)) for _ in range(2)]
    try:
        await stores[0].migrate()
        clock = ManualClock()
        prices = PriceTable.parse({"mem-1": {"per_task": 100}})
        services = [
            VideoService(s, Registry([upstream(clock)]), prices=prices, clock=clock) for s in stores
        ]
        owner, _ = await services[0].create_token("t")
        await stores[0].change_quota(owner.id, clock(), grant=550)
        results = await asyncio.gather(
            *(
                services[i % 2].create(owner, VideoRequest(model="mem-1", prompt=f"p{i}"))
                for i in range(10)
            ),
            return_exceptions=True,
        )
        made = [r for r in results if isinstance(r, Task)]
        assert len(made) == 5  # one balance for both "API processes"
        assert all(isinstance(r, PaymentRequired) for r in results if not isinstance(r, Task))
        assert (await stores[1].balance(owner.id)).amount == 50
        # Two workers end the same task at once: one write wins, one refund is recorded.
        await asyncio.gather(
            services[0].fail(made[0], "upstream_failed", "a"),
            services[1].fail(made[0], "expired", "b"),
        )
        rows = list(await stores[0].ledger_entries(owner.id, limit=100))
        assert [r["kind"] for r in rows if r["task_id"] == made[0].id] == ["refund", "precharge"]
        assert (await stores[0].balance(owner.id)).amount == 150
    finally:
        for s in stores:
            await s.close()
        await _drop(name)


# -- a live gateway: the HTTP surfaces, the admin API and the CLI ----------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("billing")
    sim = ArkSimulator(api_keys={KEY}, queued_seconds=0.2, running_seconds=0.3)
    handle = serve_in_thread(sim)
    env = server_env(
        workdir,
        REELGATE_ARK_API_KEY=KEY,
        REELGATE_ARK_BASE_URL=handle.base_url,
        REELGATE_ADMIN_TOKEN="admin-secret",
        REELGATE_PRICES=json.dumps(TABLE),
        REELGATE_BILLING_CURRENCY="µCNY",
    )
    server = LiveServer(workdir, env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        handle.stop()


def admin(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/v1/admin", headers={"Authorization": "Bearer admin-secret"}
    )


def new_token(server: LiveServer, grant: int | None) -> tuple[str, str]:
    with admin(server) as api:
        made = api.post("/tokens", json={"name": "billing"}).json()["data"]
        if grant is not None:
            r = api.post(f"/tokens/{made['id']}/quota", json={"grant": grant, "note": "welcome"})
            answer = r.json()["data"]
            assert answer["balance"] == grant
            # The token's own view (webhook_url included), with its balance.
            assert set(answer) >= set(made) - {"token"}
            assert answer["webhook_url"] == made["webhook_url"]
    return made["id"], made["token"]


def ledger(server: LiveServer, token_id: str) -> list[dict[str, Any]]:
    with admin(server) as api:
        rows: list[dict[str, Any]] = api.get("/ledger", params={"token": token_id}).json()["data"]
    return rows


def test_quote_equals_the_pre_charge_on_the_seed_surface(gateway: LiveServer) -> None:
    token_id, plain = new_token(gateway, GRANT)
    bodies = [
        {"model": V15, "prompt": "a fox --rs 1080p", "metadata": {"ratio": "16:9"}},
        {"model": V15, "prompt": "a fox", "metadata": {"service_tier": "flex"}, "duration": 8},
        {"model": PRO, "prompt": "a fox", "size": "1248x704", "duration": 3},
        {"model": V2, "prompt": "a fox", "duration": -1},
        {"model": "sandbox-t2v", "prompt": "a fox", "duration": 2, "size": "160x120"},
    ]
    with gateway.client(plain) as c:
        for body in bodies:
            quote = c.post("/v1/video/generations/quote", json=body).json()["data"]
            made = c.post("/v1/video/generations", json=body).json()
            held = [r for r in ledger(gateway, token_id) if r["task_id"] == made["task_id"]]
            assert [r["kind"] for r in held] == ["precharge"]
            assert held[0]["amount"] == -quote["amount"] < 0, body
            assert quote["currency"] == "µCNY"
        flagged = c.post("/v1/video/generations/quote", json=bodies[0]).json()["data"]
        assert flagged["estimated_tokens"] == 1920 * 1080 * 121 // 1024  # priced as 1080p
        bad = c.post("/v1/video/generations/quote", json={"model": V15, "prompt": "x --rs 4k"})
        same = c.post("/v1/video/generations", json={"model": V15, "prompt": "x --rs 4k"})
        assert bad.status_code == same.status_code == 400
        assert bad.json()["code"] == same.json()["code"] == "invalid_parameter"
        free = c.post("/v1/video/generations/quote", json={"model": "sandbox-i2v", "prompt": "x"})
        assert free.json()["code"] == "missing_parameter"


def test_usage_balance_and_refunds_end_to_end(gateway: LiveServer) -> None:
    token_id, plain = new_token(gateway, GRANT)
    with gateway.client(plain) as c:
        ok = c.post(
            "/v1/video/generations",
            json={"model": V15, "prompt": "a fox --rs 480p", "metadata": {"ratio": "16:9"}},
        ).json()["task_id"]
        bad = c.post(
            "/v1/video/generations", json={"model": V15, "prompt": "a fox [sim:fail]"}
        ).json()["task_id"]
        for task_id in (ok, bad):
            status = c.get(f"/v1/video/generations/{task_id}", params={"wait": 30})
            while status.json()["data"]["status"] not in ("success", "failure"):
                status = c.get(f"/v1/video/generations/{task_id}", params={"wait": 30})
        usage_tokens = c.get(f"/api/v3/contents/generations/tasks/{ok}").json()["usage"]
        cost = pricing.ceil_div(usage_tokens["total_tokens"] * 16 * M, M)
        assert usage_tokens["total_tokens"] == 864 * 480 * 121 // 1024
        assert c.get("/v1/balance").json()["data"] == {
            "balance": GRANT - cost,
            "currency": "µCNY",
            "limited": True,
        }
        usage = c.get("/v1/usage", params={"group_by": "model"}).json()
        assert usage["currency"] == "µCNY"
        assert [(u["key"], u["tasks"], u["charged"], u["pending"]) for u in usage["data"]] == [
            (V15, 2, cost, 0)
        ]
    kinds = sorted((r["task_id"] or "", r["kind"]) for r in ledger(gateway, token_id))
    assert kinds == sorted(
        [("", "grant"), (ok, "precharge"), (ok, "settle"), (bad, "precharge"), (bad, "refund")]
    )
    with admin(gateway) as api:
        across = api.get("/usage", params={"group_by": "token"}).json()["data"]
    assert next(u for u in across if u["key"] == token_id)["charged"] == cost


def test_every_surface_refuses_a_short_balance_with_402(gateway: LiveServer) -> None:
    token_id, plain = new_token(gateway, 1)
    body = {"model": V15, "prompt": "a fox"}
    with gateway.client(plain) as c:
        seed = c.post("/v1/video/generations", json=body)
        videos = c.post("/v1/videos", json=body)
        ark = c.post(
            "/api/v3/contents/generations/tasks",
            json={"model": V15, "content": [{"type": "text", "text": "a fox"}]},
        )
        assert (seed.status_code, seed.json()["code"]) == (402, "insufficient_quota")
        assert (videos.status_code, videos.json()["error"]["code"]) == (402, "insufficient_quota")
        assert videos.json()["error"]["type"] == "insufficient_quota"
        assert (ark.status_code, ark.json()["error"]["code"]) == (402, "insufficient_quota")
        assert c.get("/v1/video/generations").json()["data"] == []
        assert c.get("/v1/balance").json()["data"]["balance"] == 1
        quote = c.post("/v1/video/generations/quote", json=body).json()["data"]
        assert (quote["sufficient"], quote["balance_after"]) == (False, 1 - quote["amount"])
    assert [r["kind"] for r in ledger(gateway, token_id)] == ["grant"]


def test_quota_from_the_cli(gateway: LiveServer) -> None:
    token_id, _ = new_token(gateway, None)

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "reelgate", "token", "quota", token_id, *args],
            cwd=gateway.workdir,
            env=gateway.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    assert "balance 0 µCNY, unlimited" in cli()
    assert "balance 500 µCNY, limited" in cli("--grant", "500", "--note", "trial")
    assert "balance 120 µCNY, limited" in cli("--set", "120")
    shown = cli("--unlimited", "--entries", "5")
    assert "balance 120 µCNY, unlimited" in shown
    assert "adjust" in shown
    assert "-380" in shown
    assert "trial" in shown
    with admin(gateway) as api:
        bad = api.post(f"/tokens/{token_id}/quota", json={"grant": 1.5})
        assert (bad.status_code, bad.json()["param"]) == (400, "grant")
        listed = api.get("/tokens").json()["data"]
    assert next(t for t in listed if t["id"] == token_id)["quota_limited"] is False
