"""Jimeng end to end through a live reelgate: a channel from ``REELGATE_CHANNELS`` with a
Volcengine key pair, on the Jimeng simulator (which verifies every request's signature), on
the seed API and the openai SDK, to reelgate's durable copy of the MP4."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from reelgate.testing.jimeng_simulator import JimengSimulator
from reelgate.testing.simulator import SimulatorHandle, serve_in_thread
from tests.conftest import LiveServer, server_env

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")

PAIR = "AKLTjimenge2e:c2VjcmV0LWtleS1lMmU="


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[JimengSimulator, SimulatorHandle]]:
    simulator = JimengSimulator(api_keys={PAIR}, queued_seconds=0.3, running_seconds=0.5)
    handle = serve_in_thread(simulator)
    yield simulator, handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(
    sim: tuple[JimengSimulator, SimulatorHandle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("jimeng")
    channels = [{"name": "jimeng-1", "provider": "jimeng", "secret": PAIR, "base_url": sim[1].url}]
    server = LiveServer(workdir, server_env(workdir, REELGATE_CHANNELS=json.dumps(channels)))
    server.start()
    yield server
    server.stop()


def result(server: LiveServer, task_id: str) -> dict[str, Any]:
    with server.client() as c:
        return dict(c.get(f"/v1/video/generations/{task_id}").json()["data"])


def durable(server: LiveServer, task_id: str) -> bytes:
    deadline = time.monotonic() + 60
    while "/v1/media/mirror/" not in (link := result(server, task_id)["result_url"]):
        assert time.monotonic() < deadline, link
        time.sleep(0.1)
    video = httpx.get(link)
    assert video.status_code == 200
    return video.content


def test_the_seed_api_gets_a_durable_video(
    sim: tuple[JimengSimulator, SimulatorHandle], gateway: LiveServer
) -> None:
    simulator, _ = sim
    with gateway.client() as c:
        made = c.post(
            "/v1/video/generations",
            json={"model": "jimeng_v30_pro", "prompt": "a paper lantern", "duration": 10,
                  "metadata": {"ratio": "21:9", "seed": 7}},
        )  # fmt: skip
    assert made.status_code == 200, made.text
    task_id = made.json()["task_id"]
    assert gateway.wait_terminal(task_id)["status"] == "success"
    assert durable(gateway, task_id)[4:8] == b"ftyp"
    body = next(iter(simulator.tasks.values())).body
    assert body == {
        "req_key": "jimeng_ti2v_v30_pro",
        "prompt": "a paper lantern",
        "seed": 7,
        "frames": 241,
        "aspect_ratio": "21:9",
    }
    assert simulator.bad_signatures == 0


def test_the_openai_sdk_creates_polls_and_downloads(gateway: LiveServer) -> None:
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0)
    video = client.videos.create_and_poll(
        model="jimeng_v30",  # type: ignore[arg-type]
        prompt="a lighthouse in the fog",
        seconds="5",  # type: ignore[arg-type]
        size="1248x704",  # type: ignore[arg-type]
        poll_interval_ms=100,
    )
    assert video.status == "completed", video
    assert client.videos.download_content(video.id).content[4:8] == b"ftyp"
    assert durable(gateway, video.id)[4:8] == b"ftyp"


def test_a_wrong_key_pair_disables_the_channel_and_the_task_fails_clearly(
    sim: tuple[JimengSimulator, SimulatorHandle], tmp_path: Any
) -> None:
    simulator, handle = sim
    wrong = "AKLTjimenge2e:not-the-secret"
    channels = [{"name": "bad", "provider": "jimeng", "secret": wrong, "base_url": handle.url}]
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_CHANNELS=json.dumps(channels)))
    server.start()
    try:
        before = simulator.bad_signatures
        with server.client() as c:
            task_id = c.post(
                "/v1/video/generations", json={"model": "jimeng_v30", "prompt": "x"}
            ).json()["task_id"]
        done = server.wait_terminal(task_id)
        assert done["status"] == "failure"
        assert "SignatureDoesNotMatch" in done["fail_reason"]
        assert simulator.bad_signatures > before
    finally:
        server.stop()
