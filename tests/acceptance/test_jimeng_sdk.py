"""Volcengine's official Python SDK (``volcengine``, its ``VisualService``) against the Jimeng
simulator, unchanged but for its host and scheme: the SDK's own signature passes the
simulator's check, a wrong secret key is refused with Volcengine's ``SignatureDoesNotMatch``,
and a video task goes from ``in_queue`` to ``done`` with a video URL that serves an MP4."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from volcengine.visual.VisualService import VisualService

from reelgate.testing.jimeng_simulator import JimengSimulator
from reelgate.testing.simulator import serve_in_thread

AK, SK = "AKLTsdkfidelity", "c2RrLWZpZGVsaXR5LXNlY3JldA=="


@pytest.fixture
def sim() -> Iterator[tuple[JimengSimulator, str]]:
    simulator = JimengSimulator(api_keys={f"{AK}:{SK}"}, queued_seconds=0.2, running_seconds=0.3)
    handle = serve_in_thread(simulator)
    try:
        yield simulator, handle.url
    finally:
        handle.stop()


def service(url: str, sk: str = SK) -> Any:
    visual = VisualService()  # the SDK keeps one instance per process: reconfigure it
    visual.set_ak(AK)
    visual.set_sk(sk)
    visual.set_host(url.removeprefix("http://"))
    visual.set_scheme("http")
    return visual


def test_the_sdk_submits_and_gets_a_result(sim: tuple[JimengSimulator, str]) -> None:
    simulator, url = sim
    visual = service(url)
    made = visual.cv_sync2async_submit_task(
        {"req_key": "jimeng_t2v_v30", "prompt": "a lantern", "frames": 121, "aspect_ratio": "9:16"}
    )
    assert made["code"] == 10000, made
    task_id = made["data"]["task_id"]
    query = {"req_key": "jimeng_t2v_v30", "task_id": task_id}
    first = visual.cv_sync2async_get_result(query)
    assert (first["code"], first["data"]["status"]) == (10000, "in_queue")
    deadline = time.monotonic() + 10
    while (done := visual.cv_sync2async_get_result(query))["data"]["status"] != "done":
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    video = httpx.get(done["data"]["video_url"])
    assert (video.status_code, video.content[4:8]) == (200, b"ftyp")
    assert simulator.created == 1
    assert simulator.bad_signatures == 0


def test_a_wrong_secret_key_is_refused_as_volcengine_refuses_it(
    sim: tuple[JimengSimulator, str],
) -> None:
    simulator, url = sim
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        service(url, sk="not-the-secret").cv_sync2async_submit_task(
            {"req_key": "jimeng_t2v_v30", "prompt": "a lantern"}
        )
    assert (simulator.created, simulator.bad_signatures) == (0, 1)


def test_a_business_error_reaches_the_sdk_with_its_code(sim: tuple[JimengSimulator, str]) -> None:
    _, url = sim
    with pytest.raises(Exception, match="50400"):
        service(url).cv_sync2async_submit_task({"req_key": "jimeng_t2v_v30", "frames": 120})
