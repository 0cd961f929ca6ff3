"""Request bodies: a large JSON body is parsed off the event loop, a small one on it, and both
come out canonical."""

from __future__ import annotations

import asyncio
import json

import pytest

from reelgate.api.body import OFF_LOOP_BYTES, json_object
from reelgate.core.errors import InvalidRequest

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def loop_turns_during(body: bytes) -> int:
    """How often other coroutines ran while ``body`` was parsed."""
    turns = 0
    done = False

    async def other_requests() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_requests())
    await asyncio.sleep(0)
    started = turns
    try:
        await json_object(body)
    finally:
        done = True
        await ticker
    return turns - started


async def test_a_large_body_is_parsed_on_a_thread_and_the_loop_keeps_turning() -> None:
    large = json.dumps({"prompt": "x", "image": "data:image/png;base64," + "A" * OFF_LOOP_BYTES})
    assert await loop_turns_during(large.encode()) > 0
    # A small body is parsed inline: nothing else runs meanwhile (and no thread hop is paid).
    assert await loop_turns_during(b'{"prompt": "x"}') == 0


async def test_a_large_hostile_body_is_refused_off_the_loop_too() -> None:
    wide = b"[" + b"[]," * (OFF_LOOP_BYTES // 3) + b"[]]"
    with pytest.raises(InvalidRequest) as err:
        await json_object(wide)
    assert err.value.code == "invalid_json"
    with pytest.raises(InvalidRequest) as bad:
        await json_object(b'{"prompt": "\\udfff", "pad": "' + b"A" * OFF_LOOP_BYTES + b'"}')
    assert (bad.value.code, bad.value.param) == ("invalid_parameter", "prompt")
