from __future__ import annotations

import asyncio

import pytest

from reelgate.service.signal import WorkSignal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_signal_during_a_round_is_not_lost() -> None:
    signal = WorkSignal()
    seen = signal.generation  # a loop starts a round...
    signal.set()  # ...work arrives during it...
    await asyncio.wait_for(signal.wait(seen), 1)  # ...so its wait returns at once


async def test_every_waiting_loop_wakes_and_later_waits_block() -> None:
    signal = WorkSignal()
    seen = signal.generation
    waiters = [asyncio.create_task(signal.wait(seen)) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    signal.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    later = asyncio.create_task(signal.wait(signal.generation))
    await asyncio.sleep(0)
    assert not later.done()  # nothing new since: it waits for the next signal
    signal.set()
    await asyncio.wait_for(later, 1)
