"""The seed's API end to end: a real server process, a real SQLite file, the sandbox provider."""

from __future__ import annotations

import base64
import io
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from reelgate.render import probe_video
from tests.conftest import LiveServer

SEED_KEYS = {
    "task_id",
    "action",
    "status",
    "progress",
    "fail_reason",
    "submit_time",
    "start_time",
    "finish_time",
}


def create(server: LiveServer, **body: Any) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/v1/video/generations", json={"model": "sandbox-t2v", **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


def png_data_uri(color: tuple[int, int, int] = (220, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_create_answers_the_new_api_shape(live_server: LiveServer) -> None:
    before = int(time.time())
    body = create(live_server, prompt="a paper boat")
    assert set(body) == {"id", "task_id", "object", "model", "status", "progress", "created_at"}
    assert body["id"] == body["task_id"]
    assert body["task_id"].startswith("task_")
    assert len(body["task_id"]) == len("task_") + 32
    assert (body["object"], body["model"], body["status"], body["progress"]) == (
        "video",
        "sandbox-t2v",
        "queued",
        0,
    )
    assert before <= body["created_at"] <= int(time.time())


def test_task_reaches_success_with_a_playable_mp4(live_server: LiveServer, tmp_path: Path) -> None:
    task_id = create(live_server, prompt="a red kite", duration=2, size="320x240")["task_id"]
    with live_server.client() as c:
        first = c.get(f"/v1/video/generations/{task_id}")
    assert first.status_code == 200
    envelope = first.json()
    assert envelope["code"] == "success"
    assert set(envelope["data"]) >= SEED_KEYS
    assert envelope["data"]["status"] in ("queued", "in_progress", "success")

    data = live_server.wait_terminal(task_id)
    assert data["status"] == "success", data
    assert data["progress"] == "100%"
    assert data["action"] == "generate"
    assert data["submit_time"] <= data["start_time"] <= data["finish_time"]
    assert data["fail_reason"].startswith(live_server.url + "/v1/media/")
    assert data["result_url"] == data["fail_reason"]
    assert data["error"] is None

    video = httpx.get(data["fail_reason"], timeout=30)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(video.content)
    info = probe_video(path)
    assert (info.width, info.height, info.codec) == (320, 240, "h264")
    assert abs(info.duration_s - 2.0) < 0.1

    frame = httpx.get(data["last_frame_url"], timeout=30)
    assert frame.status_code == 200
    assert frame.headers["content-type"] == "image/png"


def test_image_to_video_from_a_multipart_upload(live_server: LiveServer) -> None:
    raw = base64.b64decode(png_data_uri().split(",", 1)[1])
    with live_server.client() as c:
        r = c.post(
            "/v1/video/generations",
            data={
                "model": "sandbox-i2v",
                "prompt": "zoom in",
                "seconds": "1",
                "size": "320x180",
                "metadata": json.dumps({"run_seconds": 0.1}),
            },
            files={"image": ("first.png", raw, "image/png")},
        )
    assert r.status_code == 200, r.text
    data = live_server.wait_terminal(r.json()["task_id"])
    assert data["status"] == "success", data


def test_failure_path_is_reported_like_the_seed(live_server: LiveServer) -> None:
    task_id = create(live_server, prompt="this one breaks [sandbox:fail]")["task_id"]
    data = live_server.wait_terminal(task_id)
    assert data["status"] == "failure"
    assert data["progress"] == "100%"
    assert data["fail_reason"] == "task failed: the sandbox was asked to fail it"
    assert data["error"] == {"code": "sandbox_failure", "message": data["fail_reason"]}
    assert data["finish_time"] >= data["submit_time"]


def test_rejected_at_submission_ends_as_failure(live_server: LiveServer) -> None:
    task_id = create(live_server, prompt="no thanks [sandbox:reject]")["task_id"]
    data = live_server.wait_terminal(task_id)
    assert (data["status"], data["error"]["code"]) == ("failure", "content_moderation")


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) >= {"code", "message", "data"}
    assert body["data"] is None
    assert body["message"]
    assert "Traceback" not in response.text
    return response.status_code, body["code"]


def test_auth_errors(live_server: LiveServer) -> None:
    url = f"{live_server.url}/v1/video/generations/task_whatever"
    assert error_of(httpx.get(url)) == (401, "missing_token")
    bad = httpx.get(url, headers={"Authorization": "Bearer rg_nope"})
    assert error_of(bad) == (401, "invalid_token")
    assert bad.headers["www-authenticate"].startswith("Bearer")
    basic = httpx.get(url, headers={"Authorization": "Basic abc"})
    assert error_of(basic) == (401, "missing_token")
    post = httpx.post(f"{live_server.url}/v1/video/generations", json={})
    assert error_of(post) == (401, "missing_token")


def test_unknown_task_is_404(live_server: LiveServer) -> None:
    with live_server.client() as c:
        r = c.get("/v1/video/generations/task_doesnotexist")
    assert error_of(r) == (404, "task_not_found")


def test_another_tokens_task_is_404(live_server: LiveServer) -> None:
    task_id = create(live_server, prompt="mine")["task_id"]
    other = _new_token(live_server)
    with live_server.client(other) as c:
        assert error_of(c.get(f"/v1/video/generations/{task_id}")) == (404, "task_not_found")
    with live_server.client() as c:
        assert c.get(f"/v1/video/generations/{task_id}").status_code == 200


def _new_token(server: LiveServer) -> str:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "reelgate", "token", "create", "--name", "other"],
        cwd=server.workdir,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_bad_requests(live_server: LiveServer) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"json": {"prompt": "x"}}, 400, "missing_parameter"),
        ({"json": {"model": "sandbox-t2v", "prompt": "  "}}, 400, "invalid_parameter"),
        ({"json": {"model": "nope", "prompt": "x"}}, 400, "model_not_found"),
        (
            {"json": {"model": "sandbox-t2v", "prompt": "x", "size": "33x33"}},
            400,
            "invalid_parameter",
        ),
        (
            {"json": {"model": "sandbox-t2v", "prompt": "x", "duration": 99}},
            400,
            "invalid_parameter",
        ),
        (
            {"json": {"model": "sandbox-t2v", "prompt": "x", "metadata": {"x": 1}}},
            400,
            "unsupported_parameter",
        ),
        (
            {
                "json": {
                    "model": "sandbox-i2v",
                    "prompt": "x",
                    "image": "data:image/png;base64,AAAA",
                }
            },
            400,
            "invalid_image",
        ),
        (
            {
                "json": {
                    "model": "sandbox-i2v",
                    "prompt": "x",
                    "image": "http://169.254.169.254/latest/meta-data",
                }
            },
            400,
            "url_not_allowed",
        ),
        ({"json": [1, 2]}, 400, "invalid_json"),
        (
            {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        (
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            400,
            "invalid_form",
        ),
        (
            {"content": b"{oops", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        (
            {"content": b"<x/>", "headers": {"content-type": "application/xml"}},
            415,
            "unsupported_media_type",
        ),
        (
            {"content": b"x" * (33 * 1024 * 1024), "headers": {"content-type": "application/json"}},
            413,
            "payload_too_large",
        ),
    ]
    with live_server.client() as c:
        for kwargs, status, code in cases:
            assert error_of(c.post("/v1/video/generations", **kwargs)) == (status, code), kwargs


def test_unknown_route_and_method(live_server: LiveServer) -> None:
    with live_server.client() as c:
        assert error_of(c.get("/v1/nothing")) == (404, "not_found")
        assert error_of(c.delete("/v1/video/generations/task_x")) == (405, "method_not_allowed")


def test_media_links_are_signed(live_server: LiveServer) -> None:
    task_id = create(live_server, prompt="signed", duration=1, size="128x128")["task_id"]
    url = live_server.wait_terminal(task_id)["fail_reason"]
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.replace("sig=", "sig=x")).status_code == 404
    assert httpx.get(url.split("?")[0]).status_code == 404
    longer = url.replace("expires=", "expires=9")
    assert httpx.get(longer).status_code == 404
    ranged = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert len(ranged.content) == 100


def test_odd_range_headers_get_the_whole_file_or_a_documented_416(
    live_server: LiveServer,
) -> None:
    """Found by fuzzing: an empty or multi-range Range header got Starlette's plain-text 400
    (or a multipart body) from /content, forms the document does not list."""
    task_id = create(live_server, prompt="ranges", duration=1, size="128x128")["task_id"]
    live_server.wait_terminal(task_id)
    with live_server.client() as c:
        whole = c.get(f"/v1/video/generations/{task_id}/content")
        size = len(whole.content)
        for odd in ("", "bytes=", "bytes=0-1,4-5", "items=0-1", "bytes=x-y"):
            got = c.get(f"/v1/video/generations/{task_id}/content", headers={"Range": odd})
            assert (got.status_code, got.headers["content-type"]) == (200, "video/mp4"), odd
            assert got.content == whole.content, odd
        part = c.get(f"/v1/video/generations/{task_id}/content", headers={"Range": "bytes=0-9"})
        assert (part.status_code, part.content) == (206, whole.content[:10])
        past = c.get(
            f"/v1/video/generations/{task_id}/content", headers={"Range": f"bytes={size}-"}
        )
        assert (past.status_code, past.content) == (416, b"")
        assert past.headers["content-range"] == f"bytes */{size}"
        assert "content-type" not in past.headers


def test_odd_numbers_in_queries_and_headers_are_a_400_not_a_500(live_server: LiveServer) -> None:
    """Found by fuzzing: a time past what SQLite's integers hold, and digits such as "²" that
    str.isdigit accepts but int() does not, reached int() or the database and answered 500."""
    task_id = create(live_server, prompt="numbers", duration=1, size="128x128")["task_id"]
    link = live_server.wait_terminal(task_id)["fail_reason"]
    with live_server.client() as c:
        huge = c.get("/v1/usage", params={"to": "8152654162668689396072448"})
        assert (error_of(huge), huge.json()["param"]) == ((400, "invalid_parameter"), "to")
        for path, params in [
            ("/v1/usage", {"from": "²"}),
            ("/v1/video/generations", {"limit": "²"}),
        ]:
            assert error_of(c.get(path, params=params)) == (400, "invalid_parameter"), path
        openai = c.get("/v1/videos", params={"limit": "²"})  # the OpenAI error shape
        assert (openai.status_code, openai.json()["error"]["param"]) == (400, "limit")
        body = {"model": "sandbox-t2v", "prompt": "x", "duration": "²"}
        assert error_of(c.post("/v1/video/generations", json=body)) == (400, "invalid_parameter")
        events = c.get(
            f"/v1/video/generations/{task_id}/events",
            headers={"Last-Event-ID": "²".encode("latin-1")},
        )
        assert events.status_code == 200
    forged = link.replace("expires=", "expires=²")
    assert httpx.get(forged).status_code == 404


def test_models_openapi_docs_health(live_server: LiveServer) -> None:
    with live_server.client() as c:
        models = c.get("/v1/models").json()["data"]
        assert {m["id"] for m in models} == {"sandbox-t2v", "sandbox-i2v"}
        spec = c.get("/openapi.json").json()
        assert "/v1/video/generations/{task_id}" in spec["paths"]
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "swagger-ui" in docs.text
        assert c.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert c.get("/healthz").json() == {"status": "ok"}


def test_restart_mid_task_still_completes(fresh_server: LiveServer) -> None:
    fresh_server.start()
    task_id = create(
        fresh_server,
        prompt="survive",
        duration=1,
        size="160x120",
        metadata={"queue_seconds": 0, "run_seconds": 1.5},
    )["task_id"]
    deadline = time.monotonic() + 20
    with fresh_server.client() as c:
        while c.get(f"/v1/video/generations/{task_id}").json()["data"]["status"] != "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    fresh_server.stop(signal.SIGKILL)
    fresh_server.start()
    assert "rg_" not in fresh_server.output  # the first token is printed on the first start only
    assert fresh_server.wait_terminal(task_id)["status"] == "success"
