"""Liveness and readiness: /readyz checks the database, the schema and a worker's heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelgate.api.health import Readiness
from reelgate.store.sql import SqlStore, open_store
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
    now = [1000.0]
    ready = Readiness(store, stale_after=60, clock=lambda: now[0])
    assert await ready.checks() == {
        "database": "ok",
        "migrations": "ok",
        "worker": "no worker has reported",
    }
    await store.worker_seen("w1", 1000.0)
    assert (await ready.checks())["worker"] == "ok"
    now[0] = 1061.0
    assert (await ready.checks())["worker"] == "last seen 61 s ago (stale)"
    await store.worker_seen("w2", 1060.0)
    assert (await ready.checks())["worker"] == "ok"  # any live worker will do
    await store.worker_gone("w2")
    assert (await ready.checks())["worker"].endswith("(stale)")


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
