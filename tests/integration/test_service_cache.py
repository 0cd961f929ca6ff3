"""The hot path's caches share database reads: many pollers of one expired task (or token) cost
one read, not one each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reelgate.core.request import VideoRequest
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore, open_store
from reelgate.testing import ManualClock
from tests.integration.test_engine_queue import upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingStore(SqlStore):
    """The real SQLite store, counting the reads the status GET may make."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task_reads = 0
        self.token_reads = 0

    async def get_task(self, owner_id: str, task_id: str) -> Any:
        self.task_reads += 1
        await asyncio.sleep(0)  # let the other pollers arrive while this read is under way
        return await super().get_task(owner_id, task_id)

    async def token_by_hash(self, token_hash: str) -> Any:
        self.token_reads += 1
        await asyncio.sleep(0)
        return await super().token_by_hash(token_hash)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'c.db'}")
    s = CountingStore(opened._engine)
    await s.migrate()
    yield s
    await s.close()


async def test_concurrent_pollers_share_one_read(store: CountingStore) -> None:
    clock = ManualClock()
    service = VideoService(
        store, Registry([upstream(clock)]), clock=clock, monotonic=clock, task_cache_ttl=1.0
    )
    owner, token = await service.create_token("t")
    task = await service.create(owner, VideoRequest(model="mem-1", prompt="a cat"))
    clock.advance(5)  # the cached row and token have expired
    service.forget_tokens()
    store.task_reads = store.token_reads = 0
    tokens = await asyncio.gather(*(service.authenticate(token.plaintext) for _ in range(50)))
    seen = await asyncio.gather(*(service.get(owner, task.id) for _ in range(50)))
    assert {t.id for t in tokens} == {owner.id}
    assert {t.id for t in seen} == {task.id}
    assert (store.token_reads, store.task_reads) == (1, 1)
    # Later misses read again (nothing is kept beyond the cache's own rules).
    clock.advance(5)
    await service.get(owner, task.id)
    assert store.task_reads == 2


async def test_a_just_expired_row_is_answered_and_reread_in_the_background(
    store: CountingStore, tmp_path: Path
) -> None:
    clock = ManualClock()
    service = VideoService(
        store, Registry([upstream(clock)]), clock=clock, monotonic=clock, task_cache_ttl=1.0
    )
    owner, _ = await service.create_token("t")
    task = await service.create(owner, VideoRequest(model="mem-1", prompt="a cat"))
    # Another process changes the task (a second service on the same database).
    other = VideoService(store, Registry([upstream(clock)]), clock=clock, monotonic=clock)
    changed = await other.cancel(owner, task.id)
    assert changed.version > task.version
    store.task_reads = 0
    clock.advance(1.5)  # expired half a lifetime ago: within the grace
    served = await service.get(owner, task.id)
    assert served.version == task.version  # answered at once, from memory
    await asyncio.gather(*service._loading.values())  # the background read completes
    await asyncio.sleep(0)  # and its callback refreshes the entry
    assert store.task_reads == 1
    assert (await service.get(owner, task.id)).version == changed.version  # now the new row
    # Past the grace, a poller waits for the read: a row is never more than two lifetimes old.
    waiting = await service.create(owner, VideoRequest(model="mem-1", prompt="a dog"))
    await service.get(owner, waiting.id)
    clock.advance(2.5)
    store.task_reads = 0
    assert (await service.get(owner, waiting.id)).id == waiting.id
    assert store.task_reads == 1
