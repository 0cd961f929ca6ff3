"""Ark's callbacks into a live reelgate, over real HTTP on loopback.

reelgate passes Ark a ``callback_url`` with a per-task token; the simulator posts every status
change there. A callback only brings the task's look-up forward: the state applied is always the
one the upstream confirms, so forged and replayed callbacks change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reelgate.testing import ArkSimulator, serve_in_thread
from tests.conftest import LiveServer, server_env

ARK_KEY = "ark-callback-key"
MODEL = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[ArkSimulator, Any]]:
    simulator = ArkSimulator(api_keys={ARK_KEY}, queued_seconds=0.5, running_seconds=1.0)
    handle = serve_in_thread(simulator)
    yield simulator, handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(
    sim: tuple[ArkSimulator, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("callbacks")
    server = LiveServer(workdir, {})
    server.env = server_env(
        workdir,
        REELGATE_ARK_API_KEY=ARK_KEY,
        REELGATE_ARK_BASE_URL=sim[1].base_url,
        REELGATE_PUBLIC_URL=f"http://127.0.0.1:{server.port}",
        # Without callbacks the next look would come minutes later: only a callback is quick.
        REELGATE_TRACKING_TYPICAL_SECONDS="3600",
    )
    server.start()
    yield server
    server.stop()


def create(server: LiveServer, prompt: str) -> str:
    with server.client() as c:
        r = c.post("/v1/video/generations", json={"model": MODEL, "prompt": prompt})
    assert r.status_code == 200, r.text
    return str(r.json()["task_id"])


def status(server: LiveServer, task_id: str) -> dict[str, Any]:
    with server.client() as c:
        return dict(c.get(f"/v1/video/generations/{task_id}").json()["data"])


def lookups(sim: ArkSimulator, upstream_id: str) -> int:
    """How often reelgate looked this upstream task up (single GETs and list pages)."""
    return int(sim.lookups_by_task[upstream_id])


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_callback_makes_the_result_visible_without_waiting_for_a_poll(
    sim: tuple[ArkSimulator, Any], gateway: LiveServer
) -> None:
    simulator, _ = sim
    task_id = create(gateway, "a lighthouse at dusk")
    started = time.monotonic()
    done = wait_for(lambda: (d := status(gateway, task_id))["status"] == "success" and d, 20)
    # The schedule alone would look again only after its two-minute cap.
    assert time.monotonic() - started < 15
    assert done["fail_reason"].startswith("http")
    urls = {c["url"] for c in simulator.callbacks}
    assert any(f"/v1/callbacks/ark/{task_id}/" in u for u in urls)
    assert all(c["http_status"] == 200 for c in simulator.callbacks if task_id in c["url"])


def test_forged_and_replayed_callbacks_change_nothing(
    sim: tuple[ArkSimulator, Any], gateway: LiveServer
) -> None:
    simulator, _ = sim
    running = create(gateway, "a slow river [sim:queued=0.2] [sim:running=60]")
    delivered = wait_for(
        lambda: next(
            (
                c
                for c in simulator.callbacks
                if f"/{running}/" in c["url"] and c["status"] == "running"
            ),
            None,
        ),
        20,
    )
    wait_for(lambda: status(gateway, running)["status"] == "in_progress", 20)
    url: str = delivered["url"]
    claim = {"id": delivered["id"], "status": "failed", "error": {"code": "X", "message": "forged"}}

    # A guessed token: refused like an unknown route, and the upstream is not even asked.
    upstream_id = delivered["id"]
    before = lookups(simulator, upstream_id)
    forged = httpx.post(url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", json=claim)
    assert forged.status_code == 404
    assert forged.json()["code"] == "not_found"
    other = running[:-1] + ("A" if running[-1] != "A" else "B")  # another task's id
    assert httpx.post(url.replace(running, other), json=claim).status_code == 404
    time.sleep(0.5)
    assert lookups(simulator, upstream_id) == before

    # The genuine address with a lying body: reelgate asks Ark, which says "running".
    assert httpx.post(url, json=claim).status_code == 200
    wait_for(lambda: lookups(simulator, upstream_id) > before, 10)
    time.sleep(0.5)
    assert status(gateway, running)["status"] == "in_progress"

    # Replays of a finished task's callback: answered, but no look-up and no change.
    finished = create(gateway, "a quick bird")
    wait_for(lambda: status(gateway, finished)["status"] == "success", 20)
    final = next(c for c in simulator.callbacks if f"/{finished}/" in c["url"])
    before = lookups(simulator, final["id"])
    for _ in range(3):
        replay = httpx.post(final["url"], json={"id": final["id"], "status": "failed"})
        assert replay.status_code == 200
    time.sleep(0.5)
    assert lookups(simulator, final["id"]) == before
    assert status(gateway, finished)["status"] == "success"
