"""Vidu end to end through a live reelgate: a channel from ``REELGATE_CHANNELS`` on the Vidu
simulator, tasks tracked by Vidu's signed callbacks (the schedule alone would look minutes
later), on the seed API and the openai SDK, to reelgate's durable copy of the MP4; forged
callbacks change nothing; Vidu's concurrency cap is the channel's admission cap."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from reelgate.providers.vidu import signature
from reelgate.testing.simulator import SimulatorHandle, serve_in_thread
from reelgate.testing.vidu_simulator import ViduSimulator
from tests.conftest import LiveServer, server_env

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")

KEY = "vidu-e2e-token"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[ViduSimulator, SimulatorHandle]]:
    simulator = ViduSimulator(api_keys={KEY}, queued_seconds=0.3, running_seconds=0.6)
    handle = serve_in_thread(simulator)
    yield simulator, handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(
    sim: tuple[ViduSimulator, SimulatorHandle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("vidu")
    server = LiveServer(workdir, {})
    channels = [{"name": "vidu-1", "provider": "vidu", "secret": KEY, "base_url": sim[1].url}]
    server.env = server_env(
        workdir,
        REELGATE_CHANNELS=json.dumps(channels),
        REELGATE_PUBLIC_URL=f"http://127.0.0.1:{server.port}",
        # Without callbacks the next look would come minutes later: only a callback is quick.
        REELGATE_TRACKING_TYPICAL_SECONDS="3600",
    )
    server.start()
    yield server
    server.stop()


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def task(server: LiveServer, task_id: str) -> dict[str, Any]:
    with server.client() as c:
        return dict(c.get(f"/v1/video/generations/{task_id}").json()["data"])


def durable(server: LiveServer, task_id: str) -> bytes:
    link = wait_for(
        lambda: "/v1/media/mirror/" in (u := task(server, task_id)["result_url"]) and u, 60
    )
    video = httpx.get(link)
    assert video.status_code == 200
    return video.content


def test_the_seed_api_gets_a_video_tracked_by_signed_callbacks(
    sim: tuple[ViduSimulator, SimulatorHandle], gateway: LiveServer
) -> None:
    simulator, handle = sim
    image = f"{handle.url}/files/first.png?expires=9999999999"  # an image on loopback
    with gateway.client() as c:
        made = c.post(
            "/v1/video/generations",
            json={"model": "viduq2-pro", "prompt": "a kite", "image": image, "duration": 4,
                  "metadata": {"resolution": "1080p", "movement_amplitude": "small"}},
        )  # fmt: skip
    assert made.status_code == 200, made.text
    task_id = made.json()["task_id"]
    started = time.monotonic()
    done = wait_for(lambda: (d := task(gateway, task_id))["status"] == "success" and d, 20)
    assert time.monotonic() - started < 15  # the two-minute safety net never came into it
    assert done["fail_reason"].startswith("http")
    mine = [c for c in simulator.callbacks if f"/v1/callbacks/vidu/{task_id}/" in c["url"]]
    assert {c["state"] for c in mine} >= {"success"}
    assert all(c["http_status"] == 200 for c in mine)
    upstream = next(t for t in simulator.tasks.values() if t.body.get("payload") == f"rg-{task_id}")
    assert upstream.body["resolution"] == "1080p"
    assert durable(gateway, task_id)[4:8] == b"ftyp"


def test_the_openai_sdk_creates_polls_and_downloads(gateway: LiveServer, tmp_path: Path) -> None:
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0)
    video = client.videos.create_and_poll(
        model="viduq2",  # type: ignore[arg-type]
        prompt="a lighthouse in the fog",
        seconds="5",  # type: ignore[arg-type]
        size="1280x720",
        poll_interval_ms=100,
    )
    assert video.status == "completed", video
    assert (video.seconds, video.size) == ("5", "1280x720")
    content = client.videos.download_content(video.id)
    assert content.content[4:8] == b"ftyp"
    assert durable(gateway, video.id)[4:8] == b"ftyp"


def test_forged_and_stale_callbacks_change_nothing(
    sim: tuple[ViduSimulator, SimulatorHandle], gateway: LiveServer
) -> None:
    simulator, _ = sim
    with gateway.client() as c:
        made = c.post(
            "/v1/video/generations",
            json={"model": "viduq2", "prompt": "a slow river [sim:queued=0.1] [sim:running=60]"},
        )
    task_id = made.json()["task_id"]
    delivered = wait_for(
        lambda: next(
            (
                x
                for x in simulator.callbacks
                if f"/{task_id}/" in x["url"] and x["state"] == "processing"
            ),
            None,
        ),
        20,
    )
    wait_for(lambda: task(gateway, task_id)["status"] == "in_progress", 20)
    url: str = delivered["url"]
    claim = json.dumps({"id": delivered["id"], "state": "success", "err_code": "", "creations": [
        {"url": "https://attacker.example/fake.mp4"}]}).encode()  # fmt: skip
    now = time.time()
    forged = signature.signed_headers("a guessed key", url, now, "nonce-1")
    stale = signature.signed_headers(KEY, url, now - 3600, "nonce-2")
    for headers in (forged, stale, {}):
        answer = httpx.post(url, content=claim, headers=headers)
        assert answer.status_code == 200  # delivered: retrying would change nothing
    time.sleep(1.0)
    after = task(gateway, task_id)
    assert after["status"] == "in_progress"
    assert "attacker" not in json.dumps(after)

    # The gateway tells them apart: an unverified callback says nothing, so the task is looked
    # up at once; a verified one saying "processing" only brings a look 2-7 s forward.
    upstream_id = delivered["id"]
    before = simulator.lookups_by_task[upstream_id]
    httpx.post(url, content=claim, headers=forged)
    wait_for(lambda: simulator.lookups_by_task[upstream_id] > before, 5)
    before = simulator.lookups_by_task[upstream_id]
    still = json.dumps({"id": upstream_id, "state": "processing"}).encode()
    signed = signature.signed_headers(KEY, url, time.time(), "nonce-3")
    assert httpx.post(url, content=still, headers=signed).status_code == 200
    time.sleep(1.2)
    assert simulator.lookups_by_task[upstream_id] == before


def test_tasks_beyond_the_concurrency_cap_wait_in_reelgate_and_all_succeed(
    sim: tuple[ViduSimulator, SimulatorHandle], gateway: LiveServer
) -> None:
    simulator, _ = sim
    with gateway.client() as c:
        ids = [
            c.post(
                "/v1/video/generations", json={"model": "viduq1", "prompt": f"burst {i}"}
            ).json()["task_id"]
            for i in range(8)
        ]
    for task_id in ids:
        wait_for(lambda t=task_id: task(gateway, t)["status"] == "success", 60)
    mine = sorted(
        (
            t
            for t in simulator.tasks.values()
            if str(t.body.get("payload", "")).removeprefix("rg-") in ids
        ),
        key=lambda t: t.created_at,
    )
    assert len(mine) == 8
    # At each create, at most 5 of the channel's tasks were unfinished upstream (itself included).
    for t in mine:
        busy = [
            o
            for o in mine
            if o.created_at <= t.created_at and (simulator.finished_at(o.id) or 0) > t.created_at
        ]
        assert len(busy) <= 5, len(busy)
