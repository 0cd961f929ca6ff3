"""Rate limits kept in Redis (``REELGATE_REDIS_URL``): the same bucket contract as the database's,
and one budget for two API processes. Skips without a Redis at 127.0.0.1:6379 (or
``REELGATE_TEST_REDIS``); under ``CI=true`` a missing Redis fails the run."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from reelgate.store.base import RateBuckets
from reelgate.store.redis_buckets import RateStoreError, RedisBuckets
from reelgate.store.sql import open_store
from tests.conftest import LiveServer, server_env
from tests.pg import IN_CI

REDIS_URL = os.environ.get("REELGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI and unreachable at {REDIS_URL}: {exc}")
        pytest.skip(f"no Redis reachable at {REDIS_URL} ({exc}); set REELGATE_TEST_REDIS")
    return REDIS_URL


@pytest.fixture(params=["sql", "redis"])
async def buckets(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateBuckets]:
    if request.param == "sql":
        store = await open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.migrate()
        yield store
        await store.close()
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisBuckets(url, prefix=f"reelgate-test:{secrets.token_hex(4)}:")
        yield made
        await made.close()


async def test_a_bucket_refills_at_its_rate_up_to_its_burst(buckets: RateBuckets) -> None:
    # 2 tokens a second, at most 4: the same answers from the database and from Redis.
    take = buckets.take_tokens
    assert await take("k", 3, 2.0, 4.0, 100.0) == 3
    assert await take("k", 3, 2.0, 4.0, 100.0) == 1
    assert await take("k", 1, 2.0, 4.0, 100.0) == 0
    assert await take("k", 5, 2.0, 4.0, 101.0) == 2  # one second: two more
    assert await take("k", 9, 2.0, 4.0, 200.0) == 4  # long idle: never above the burst
    assert await take("other", 1, 2.0, 4.0, 200.0) == 1  # buckets are separate
    assert await take("k", 1, 2.0, 4.0, 150.0) == 0  # a clock behind the last take adds none


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    down = RedisBuckets("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RateStoreError) as caught:
            await down.take_tokens("k", 1, 1.0, 1.0, 0.0)
        assert caught.value.code == "rate_store_unavailable"
        assert caught.value.http_status == 503
    finally:
        await down.close()


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    started = []
    try:
        for i in range(2):
            env = server_env(
                tmp_path,
                REELGATE_REDIS_URL=redis_url,
                REELGATE_SANDBOX_QUEUE_SECONDS="600",
                REELGATE_TOKEN_CACHE_TTL="0",
            )
            server = LiveServer(tmp_path, env)
            server.start() if i == 0 else server.start("--no-worker")
            started.append(server)
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


def test_two_api_processes_share_one_budget_in_redis(
    replicas: tuple[LiveServer, LiveServer], redis_url: str
) -> None:
    a, b = replicas
    made = subprocess.run(
        [sys.executable, "-m", "reelgate", "token", "create", "--name", "r", "--rpm", "3"],
        cwd=a.workdir,
        env=a.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token = made.stdout.strip()
    body = {"model": "sandbox-t2v", "prompt": "x", "duration": 1, "size": "160x120"}
    answers = [
        httpx.post(
            f"{server.url}/v1/video/generations",
            headers={"Authorization": f"Bearer {token}"},
            json=body,
        )
        for server in (a, b, a, b, a, b)
    ]
    assert [r.status_code for r in answers].count(200) == 3
    refused = [r for r in answers if r.status_code == 429]
    assert {r.json()["code"] for r in refused} == {"rate_limited"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    # The budget lives in Redis (not in the database's bucket table).
    keys = asyncio.run(_bucket_keys(redis_url))
    assert any(k.startswith("reelgate:bucket:token:") for k in keys)


async def _bucket_keys(url: str) -> list[str]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        return [k.decode() async for k in client.scan_iter("reelgate:bucket:token:*")]
    finally:
        await client.aclose()
