"""Per-token limits: allowed models, creates per minute and unfinished tasks at once — in one
service on an injected clock, and across two API processes sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.core.errors import PermissionDenied, RateLimited
from reelgate.core.lifecycle import Status
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from tests.conftest import LiveServer, server_env
from tests.integration.test_engine_queue import engine, request, upstream
from tests.pg import _drop, _pg_database, pg_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_token_may_only_use_its_models(store: SqlStore) -> None:
    clock = ManualClock()
    service, _ = engine(store, upstream(clock), clock=clock)
    narrow, _ = await service.create_token("narrow", models=("other-model",))
    with pytest.raises(PermissionDenied) as err:
        await service.create(narrow, request())
    assert (err.value.code, err.value.http_status) == ("model_not_allowed", 403)
    wide, _ = await service.create_token("wide", models=("mem-1",))
    assert (await service.create(wide, request())).model == "mem-1"


async def test_creates_per_minute(store: SqlStore) -> None:
    clock = ManualClock()
    service, _ = engine(store, upstream(clock), clock=clock)
    token, _ = await service.create_token("t", rpm=3)
    for _ in range(3):
        await service.create(token, request())
    with pytest.raises(RateLimited) as err:
        await service.create(token, request())
    assert (err.value.code, err.value.http_status) == ("rate_limited", 429)
    assert err.value.retry_after == pytest.approx(20.0)
    clock.advance(20)
    await service.create(token, request())  # one more per 20 s


async def test_unfinished_tasks_at_once(store: SqlStore) -> None:
    clock = ManualClock()
    service, worker = engine(store, upstream(clock, queued=1, running=1), clock=clock)
    token, _ = await service.create_token("t", max_concurrent=2)
    results = await asyncio.gather(
        *(service.create(token, request()) for _ in range(6)), return_exceptions=True
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert (len(made), len(refused)) == (2, 4)
    assert refused[0].code == "too_many_tasks"
    await worker.tick()
    clock.advance(100)
    await worker.tick()  # both end
    assert {(await service.get(token, t.id)).status for t in made} == {Status.SUCCESS}
    await service.create(token, request())  # room again


@pytest.fixture
def pg_replicas(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    name = asyncio.run(_pg_database())
    url = pg_url(name)
    replicas = []
    try:
        for i in range(2):
            workdir = tmp_path / f"replica{i}"
            workdir.mkdir()
            env = server_env(
                workdir,
                REELGATE_DATABASE_URL=url,
                REELGATE_SECRET_KEY="shared-secret-for-both",
                REELGATE_SANDBOX_QUEUE_SECONDS="600",
                REELGATE_TOKEN_CACHE_TTL="0",
            )
            server = LiveServer(workdir, env)
            server.start("--no-worker")
            replicas.append(server)
        yield replicas[0], replicas[1]
    finally:
        for server in replicas:
            server.stop()
        asyncio.run(_drop(name))


def _token(server: LiveServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reelgate", "token", "create", *args],
        cwd=server.workdir,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


@pytest.mark.postgres
def test_limits_hold_across_two_api_processes(pg_replicas: tuple[LiveServer, LiveServer]) -> None:
    a, b = pg_replicas
    body = {"model": "sandbox-t2v", "prompt": "x", "duration": 1, "size": "160x120"}
    rated = _token(a, "--name", "rated", "--rpm", "4")
    codes = [
        httpx.post(
            f"{server.url}/v1/video/generations",
            headers={"Authorization": f"Bearer {rated}"},
            json=body,
        ).status_code
        for server in (a, b, a, b, a, b, a, b)
    ]
    assert codes.count(200) == 4  # one budget for both replicas
    assert codes.count(429) == 4
    busy = _token(b, "--name", "busy", "--max-concurrent", "3")
    codes = [
        httpx.post(
            f"{server.url}/v1/video/generations",
            headers={"Authorization": f"Bearer {busy}"},
            json=body,
        )
        for server in (a, b, a, b, a, b)
    ]
    assert [r.status_code for r in codes].count(200) == 3
    refused = [r for r in codes if r.status_code == 429]
    assert {r.json()["code"] for r in refused} == {"too_many_tasks"}
    assert all(r.headers["retry-after"] == "5" for r in refused)


def test_token_limits_and_rotation_from_the_cli(live_server: LiveServer) -> None:
    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "reelgate", "token", *args],
            cwd=live_server.workdir,
            env=live_server.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    plain = cli("create", "--name", "rotor", "--models", "sandbox-t2v").strip()
    prefix = plain[:11]
    shown = cli("limits", prefix, "--rpm", "30")
    assert "models sandbox-t2v" in shown
    assert "30/min" in shown
    assert "30/min" in cli("list")
    fresh = cli("rotate", prefix).strip()
    assert fresh.startswith("rg_")
    assert fresh != plain
    old = httpx.get(f"{live_server.url}/v1/models", headers={"Authorization": f"Bearer {plain}"})
    new = httpx.get(f"{live_server.url}/v1/models", headers={"Authorization": f"Bearer {fresh}"})
    assert (old.status_code, new.status_code) in ((401, 200), (200, 200))  # within the cache TTL
    assert new.status_code == 200
    cleared = cli("limits", fresh[:11], "--clear")
    assert "all models; no rate limit; no concurrency limit" in cleared


def test_usage_counts_a_tokens_own_tasks(live_server: LiveServer) -> None:
    import time as _time

    other = _token(live_server, "--name", "usage-other")
    body = {"model": "sandbox-t2v", "prompt": "count me", "duration": 1, "size": "160x120"}
    mine = httpx.post(
        f"{live_server.url}/v1/video/generations",
        headers={"Authorization": f"Bearer {other}"},
        json={**body, "metadata": {"queue_seconds": 0.1, "run_seconds": 0.1}},
    ).json()["task_id"]
    waiting = httpx.post(
        f"{live_server.url}/v1/video/generations",
        headers={"Authorization": f"Bearer {other}"},
        json={**body, "metadata": {"queue_seconds": 600}},
    ).json()["task_id"]
    httpx.post(
        f"{live_server.url}/v1/video/generations/{waiting}/cancel",
        headers={"Authorization": f"Bearer {other}"},
    )
    deadline = _time.monotonic() + 30
    while True:
        got = httpx.get(
            f"{live_server.url}/v1/video/generations/{mine}",
            headers={"Authorization": f"Bearer {other}"},
        ).json()["data"]
        if got["status"] == "success":
            break
        assert _time.monotonic() < deadline
        _time.sleep(0.1)
    usage = httpx.get(
        f"{live_server.url}/v1/usage",
        headers={"Authorization": f"Bearer {other}"},
        params={"group_by": "model"},
    ).json()
    assert usage["data"] == [
        {
            "key": "sandbox-t2v",
            "tasks": 2,
            "succeeded": 1,
            "failed": 1,
            "cancelled": 1,
            "unfinished": 0,
            "usage_tokens": 0,
            "charged": 0,  # no prices configured: every model is free
            "pending": 0,
        }
    ]
    by_day = httpx.get(
        f"{live_server.url}/v1/usage",
        headers={"Authorization": f"Bearer {other}"},
        params={"group_by": "day"},
    ).json()["data"]
    assert len(by_day) == 1
    assert by_day[0]["key"] % 86400 == 0
    bad = httpx.get(
        f"{live_server.url}/v1/usage",
        headers={"Authorization": f"Bearer {other}"},
        params={"group_by": "color"},
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_parameter")


def test_the_admin_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("admin")
    server = LiveServer(workdir, server_env(workdir, REELGATE_ADMIN_TOKEN="admin-secret-42"))
    server.start()
    api = httpx.Client(
        base_url=f"{server.url}/v1/admin", headers={"Authorization": "Bearer admin-secret-42"}
    )
    try:
        made = api.post("/tokens", json={"name": "team-a", "rpm": 2, "models": ["sandbox-t2v"]})
        assert made.status_code == 200, made.text
        data = made.json()["data"]
        plain = data.pop("token")
        assert plain.startswith("rg_")
        assert (data["rpm"], data["models"], data["max_concurrent"]) == (2, ["sandbox-t2v"], None)
        listed = api.get("/tokens").json()["data"]
        assert data["id"] in {t["id"] for t in listed}
        assert "admin-secret-42" not in json.dumps(listed)
        assert all("token" not in t for t in listed)  # secrets are never listed
        changed = api.patch(f"/tokens/{data['id']}", json={"rpm": None, "max_concurrent": 1})
        assert (changed.json()["data"]["rpm"], changed.json()["data"]["max_concurrent"]) == (
            None,
            1,
        )
        # A default webhook per token, set by the admin; the token sees it as its own endpoint.
        hooked = api.patch(f"/tokens/{data['id']}", json={"webhook_url": "http://127.0.0.1:9/h"})
        assert hooked.status_code == 200, hooked.text
        assert hooked.json()["data"]["webhook_url"] == "http://127.0.0.1:9/h"
        own = httpx.get(
            f"{server.url}/v1/webhook", headers={"Authorization": f"Bearer {plain}"}
        ).json()
        assert own["data"]["url"] == "http://127.0.0.1:9/h"
        bad = api.patch(f"/tokens/{data['id']}", json={"webhook_url": "ftp://x"})
        assert (bad.status_code, bad.json()["param"]) == (400, "webhook_url")
        cleared = api.patch(f"/tokens/{data['id']}", json={"webhook_url": None})
        assert cleared.json()["data"]["webhook_url"] is None
        # A refused webhook URL refuses the whole create: no token is left behind.
        count = len(api.get("/tokens").json()["data"])
        private = api.post("/tokens", json={"name": "x", "webhook_url": "http://10.1.2.3/h"})
        assert (private.status_code, private.json()["param"]) == (400, "webhook_url")
        assert len(api.get("/tokens").json()["data"]) == count
        renamed = api.patch(f"/tokens/{data['id']}", json={"name": "other"})
        assert (renamed.status_code, renamed.json()["code"]) == (400, "unsupported_parameter")
        user = {"Authorization": f"Bearer {plain}"}
        body = {"model": "sandbox-t2v", "prompt": "x", "duration": 1, "size": "160x120"}
        first = httpx.post(
            f"{server.url}/v1/video/generations",
            headers=user,
            json={**body, "metadata": {"queue_seconds": 600}},
        )
        assert first.status_code == 200
        second = httpx.post(f"{server.url}/v1/video/generations", headers=user, json=body)
        assert second.json()["code"] == "too_many_tasks"  # the new limit applies at once
        usage = api.get("/usage", params={"group_by": "token"}).json()["data"]
        assert {"key": data["id"], "tasks": 1} == {
            k: v
            for k, v in next(u for u in usage if u["key"] == data["id"]).items()
            if k in ("key", "tasks")
        }
        rotated = api.post(f"/tokens/{data['id']}/rotate").json()["data"]["token"]
        assert httpx.get(f"{server.url}/v1/models", headers=user).status_code == 401
        fresh = {"Authorization": f"Bearer {rotated}"}
        assert httpx.get(f"{server.url}/v1/models", headers=fresh).status_code == 200
        assert api.post(f"/tokens/{data['id']}/revoke").json()["data"]["active"] is False
        assert httpx.get(f"{server.url}/v1/models", headers=fresh).status_code == 401
        wrong = httpx.get(
            f"{server.url}/v1/admin/tokens", headers={"Authorization": f"Bearer {rotated}"}
        )
        assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_token")
        bad = api.post("/tokens", json={"name": "x", "rpm": 0})
        assert (bad.status_code, bad.json()["param"]) == (400, "rpm")
    finally:
        api.close()
        server.stop()


def test_without_an_admin_token_the_admin_api_does_not_exist(live_server: LiveServer) -> None:
    r = httpx.get(
        f"{live_server.url}/v1/admin/tokens",
        headers={"Authorization": f"Bearer {live_server.token}"},
    )
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
