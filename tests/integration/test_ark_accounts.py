"""Several Ark accounts behind one reelgate, against the simulator over real HTTP.

The simulator only lets a key see its own tasks (another key's id is a 404), so every task
reaching ``success`` proves its look-ups stuck to the account that created it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from reelgate.testing import ArkSimulator, serve_in_thread
from tests.conftest import LiveServer, server_env

MODEL = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[ArkSimulator, Any]]:
    simulator = ArkSimulator(api_keys={"key-a", "key-b"}, queued_seconds=0.3, running_seconds=0.6)
    handle = serve_in_thread(simulator)
    yield simulator, handle
    handle.stop()


def test_tasks_spread_over_accounts_and_stick_to_theirs(
    sim: tuple[ArkSimulator, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    simulator, handle = sim
    workdir = tmp_path_factory.mktemp("accounts")
    extra = [{"name": "second", "api_key": "key-b", "base_url": handle.base_url}]
    server = LiveServer(
        workdir,
        server_env(
            workdir,
            REELGATE_ARK_API_KEY="key-a",
            REELGATE_ARK_BASE_URL=handle.base_url,
            REELGATE_ARK_MAX_IN_FLIGHT="2",  # the first account has room for two at a time
            REELGATE_ARK_ACCOUNTS=json.dumps(extra),
        ),
    )
    server.start()
    try:
        with server.client() as c:
            ids = [
                c.post("/v1/video/generations", json={"model": MODEL, "prompt": f"p{i}"}).json()[
                    "task_id"
                ]
                for i in range(8)
            ]
        results = [server.wait_terminal(t, timeout=60) for t in ids]
    finally:
        server.stop()
    assert [r["status"] for r in results] == ["success"] * 8
    keys = Counter(t.key for t in simulator.tasks.values())
    assert keys["key-a"] >= 2
    assert keys["key-b"] >= 1
    assert sum(keys.values()) == 8
    assert "key-b" not in (workdir / "server.log").read_text()  # secrets never logged
