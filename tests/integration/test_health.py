"""Liveness and readiness: /readyz checks the database, the schema and a worker's heartbeat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelgate.api.health import Readiness
from reelgate.assembly import start_runtime
from reelgate.settings import Settings
from reelgate.store.sql import SqlStore, open_store
from reelgate.testing import ManualClock
from tests.conftest import LiveServer, server_env
from tests.pg import _drop, _pg_database, pg_url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
    await s.migrate()
    yield s
    await s.close()


@pytest.mark.anyio
async def test_readiness_follows_the_workers_heartbeat(store: SqlStore) -> None:
    clock = ManualClock(1000.0)
    ready = Readiness(store, stale_after=60, clock=clock)
    assert await ready.checks() == {
        "database": "ok",
        "migrations": "ok",
        "worker": "no worker has reported",
    }
    await store.worker_seen("w1", 1000.0)
    assert (await ready.checks())["worker"] == "ok"
    clock.set(1061.0)
    assert (await ready.checks())["worker"] == "last seen 61 s ago (stale)"
    await store.worker_seen("w2", 1060.0)
    assert (await ready.checks())["worker"] == "ok"  # any live worker will do
    await store.worker_gone("w2")
    assert (await ready.checks())["worker"].endswith("(stale)")


@pytest.mark.anyio
async def test_a_gateway_with_a_worker_is_ready_before_its_loops_first_run(tmp_path: Path) -> None:
    """The worker reports itself while the gateway starts: a readiness probe that comes before
    the worker's first turn on the event loop (as one right after start-up can) sees it."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", data_dir=tmp_path)
    runtime = await start_runtime(settings, run_worker=True)
    assert runtime.worker_task is not None
    runtime.worker_task.cancel()  # before it ever ran: only the start-up can have reported
    try:
        ready = Readiness(runtime.store, stale_after=60, clock=time.time)
        assert (await ready.checks())["worker"] == "ok"
    finally:
        await runtime.close()


def test_a_live_gateway_is_ready_and_an_api_only_one_says_why_not(tmp_path: Path) -> None:
    full = LiveServer(tmp_path / "a", server_env(tmp_path / "a"))
    (tmp_path / "a").mkdir()
    full.start()
    try:
        answer = httpx.get(f"{full.url}/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "worker": "ok"},
        }
        assert httpx.get(f"{full.url}/healthz").status_code == 200
    finally:
        full.stop()
    (tmp_path / "b").mkdir()
    api_only = LiveServer(tmp_path / "b", server_env(tmp_path / "b"))
    api_only.start("--no-worker")
    try:
        answer = httpx.get(f"{api_only.url}/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["worker"] == "no worker has reported"
    finally:
        api_only.stop()


@pytest.mark.postgres
def test_readiness_fails_when_the_database_goes_down(tmp_path: Path) -> None:
    name = asyncio.run(_pg_database())
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_DATABASE_URL=pg_url(name)))
    try:
        server.start()
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        asyncio.run(_drop(name))  # the database disappears under the running gateway
        answer = httpx.get(f"{server.url}/readyz", timeout=30)
        assert answer.status_code == 503
        checks = answer.json()["checks"]
        assert checks["database"].startswith("unreachable")
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive, not ready
    finally:
        server.stop()
        asyncio.run(_drop(name))
