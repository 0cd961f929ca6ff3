"""Seedance results kept by reelgate: copied from the Ark simulator's expiring URLs, served at
``/content`` (with Range) and at durable signed links, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.render import probe_video
from reelgate.testing import ArkSimulator, serve_in_thread
from reelgate.testing.s3_simulator import S3Simulator, serve_s3_in_thread
from tests.conftest import LiveServer, ark_gateway, server_env

KEY = "ark-media-key"
MODEL = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with ark_gateway(tmp_path_factory.mktemp("ark-media"), KEY, running=0.3) as (server, _):
        yield server


def kept(server: LiveServer, **extra: Any) -> dict[str, Any]:
    with server.client() as c:
        body = {"model": MODEL, "prompt": "a red kite", **extra}
        task_id = c.post("/v1/video/generations", json=body).json()["task_id"]
    deadline = time.monotonic() + 60
    with server.client() as c:
        while time.monotonic() < deadline:
            data: dict[str, Any] = c.get(f"/v1/video/generations/{task_id}").json()["data"]
            if data["status"] == "success" and "/v1/media/mirror/" in data["result_url"]:
                return data
            assert data["status"] != "failure", data
            time.sleep(0.1)
    raise AssertionError("the result was not kept in time")


def test_results_are_kept_and_served_with_ranges(gateway: LiveServer, tmp_path: Path) -> None:
    data = kept(gateway, metadata={"return_last_frame": True})
    assert "/tos/" in data["fail_reason"]  # the seed's field keeps Ark's URL by default
    assert "/v1/media/mirror/" in data["last_frame_url"]
    with gateway.client() as c:
        video = c.get(f"/v1/video/generations/{data['task_id']}/content")
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        (tmp_path / "v.mp4").write_bytes(video.content)
        assert probe_video(tmp_path / "v.mp4").frames > 0
        part = c.get(
            f"/v1/video/generations/{data['task_id']}/content", headers={"Range": "bytes=0-99"}
        )
        assert part.status_code == 206
        assert part.content == video.content[:100]
        frame = c.get(
            f"/v1/video/generations/{data['task_id']}/content", params={"variant": "last_frame"}
        )
        assert frame.status_code == 200
        assert frame.headers["content-type"] == "image/png"
        bad = c.get(f"/v1/video/generations/{data['task_id']}/content", params={"variant": "x"})
        assert bad.status_code == 400
    durable = httpx.get(data["result_url"])  # a signed link: no token needed
    assert durable.content == video.content


def test_content_of_an_unfinished_or_unknown_task(gateway: LiveServer) -> None:
    with gateway.client() as c:
        body = {"model": MODEL, "prompt": "slow [sim:queued=30]"}
        task_id = c.post("/v1/video/generations", json=body).json()["task_id"]
        early = c.get(f"/v1/video/generations/{task_id}/content")
        assert (early.status_code, early.json()["code"]) == (409, "content_not_ready")
        assert early.headers["retry-after"] == "5"
        assert c.get("/v1/video/generations/task_nope/content").status_code == 404
        # Queued at Ark: cancelled there (DELETE); reelgate shows failure/cancelled at once.
        cancelled = c.post(f"/v1/video/generations/{task_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["data"]["error"]["code"] == "cancelled"
        body = {"model": MODEL, "prompt": "long [sim:queued=0] [sim:running=60]"}
        running = c.post("/v1/video/generations", json=body).json()["task_id"]
        deadline = time.monotonic() + 30
        while c.get(f"/v1/video/generations/{running}").json()["data"]["status"] != "in_progress":
            assert time.monotonic() < deadline
            c.get(f"/v1/video/generations/{running}", params={"wait": 5})
        refused = c.post(f"/v1/video/generations/{running}/cancel")
        assert (refused.status_code, refused.json()["code"]) == (409, "not_cancellable")


def test_copies_in_an_s3_bucket_are_served_with_ranges(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    sim = ArkSimulator(api_keys={KEY}, queued_seconds=0.2, running_seconds=0.3)
    ark = serve_in_thread(sim)
    s3 = S3Simulator("AKIDLIVE", buckets={"videos"})
    bucket = serve_s3_in_thread(s3)
    workdir = tmp_path_factory.mktemp("ark-s3")
    server = LiveServer(
        workdir,
        server_env(
            workdir,
            REELGATE_ARK_API_KEY=KEY,
            REELGATE_ARK_BASE_URL=ark.base_url,
            REELGATE_MEDIA_S3_URL="s3://videos/kept",
            REELGATE_MEDIA_S3_ENDPOINT=bucket.endpoint,
            REELGATE_MEDIA_S3_ACCESS_KEY_ID="AKIDLIVE",
            REELGATE_MEDIA_S3_SECRET_ACCESS_KEY="s3-secret-value",
        ),
    )
    server.start()
    try:
        data = kept(server)
        with server.client() as c:
            whole = c.get(f"/v1/video/generations/{data['task_id']}/content")
            part = c.get(
                f"/v1/video/generations/{data['task_id']}/content",
                headers={"Range": "bytes=10-19"},
            )
        linked = httpx.get(data["result_url"], headers={"Range": "bytes=-5"})
    finally:
        server.stop()
        bucket.stop()
        ark.stop()
    stored = s3.objects[("videos", f"kept/{data['task_id']}.video.mp4")].data
    assert whole.status_code == 200
    assert whole.content == stored
    (tmp_path / "v.mp4").write_bytes(stored)
    assert probe_video(tmp_path / "v.mp4").frames > 0
    assert (part.status_code, part.content) == (206, stored[10:20])
    assert part.headers["content-range"] == f"bytes 10-19/{len(stored)}"
    assert (linked.status_code, linked.content) == (206, stored[-5:])
    assert "s3-secret-value" not in (workdir / "server.log").read_text()
