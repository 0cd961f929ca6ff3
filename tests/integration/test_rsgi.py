"""``reelgate serve`` (granian, RSGI): the hot status GETs answer exactly as the application does,
are counted and traced like every other request, and never outlive a token or cross owners; the
other routes pass through the bridge unchanged."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer, server_env

ADMIN = "admin-secret-rsgi"
SEED = "/v1/video/generations/{task_id}"
VIDEOS = "/v1/videos/{video_id}"
# Headers that differ between any two answers.
VARYING = {"date", "x-request-id"}
# A Prefer header without a wait: neither the hot GET nor the hot long-poll takes the request.
FULL = {"Prefer": "handling=lenient"}


def create(c: httpx.Client, **extra: Any) -> str:
    body = {"model": "sandbox-t2v", "prompt": "a boat", "duration": 1, "size": "64x64", **extra}
    answer = c.post("/v1/video/generations", json=body)
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def same_answer(hot: httpx.Response, full: httpx.Response) -> None:
    assert hot.status_code == full.status_code
    assert hot.content == full.content
    assert {k: v for k, v in hot.headers.items() if k not in VARYING} == {
        k: v for k, v in full.headers.items() if k not in VARYING
    }


def requests_counted(url: str, route: str, status: str) -> tuple[float, float]:
    """(requests answered, latency observations) of a GET route in ``/metrics``."""
    answered = timed = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.labels.get("route") != route or s.labels.get("method") != "GET":
                continue
            if s.name == "reelgate_http_requests_total" and s.labels["status"] == status:
                answered = s.value
            if s.name == "reelgate_http_request_duration_seconds_count":
                timed = s.value
    return answered, timed


def test_hot_status_gets_answer_as_the_full_routes_do(tmp_path: Path) -> None:
    # A long sandbox run: the task is seen unfinished (with estimates and poll hints) first.
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_SANDBOX_RUN_SECONDS="3"))
    server.start()
    try:
        with server.client() as c:
            task_id = create(c)
            for path in (f"/v1/video/generations/{task_id}", f"/v1/videos/{task_id}"):
                c.get(path)  # the first look-up fills the caches the hot path answers from
                for _ in range(20):
                    hot = c.get(path)
                    full = c.get(path, headers=FULL)  # the full route
                    if (hot.headers["etag"], hot.content) == (full.headers["etag"], full.content):
                        break  # (else the task, or its estimate's second, changed between them)
                same_answer(hot, full)
                etag = hot.headers["etag"]
                for _ in range(20):
                    hot = c.get(path, headers={"If-None-Match": etag})
                    full = c.get(path, headers={**FULL, "If-None-Match": etag})
                    if hot.status_code == full.status_code == 304:
                        break
                    etag = c.get(path).headers["etag"]
                same_answer(hot, full)
            assert "retry-after" in c.get(f"/v1/video/generations/{task_id}").headers
            server.wait_terminal(task_id)
            for path in (f"/v1/video/generations/{task_id}", f"/v1/videos/{task_id}"):
                hot = c.get(path)
                assert hot.status_code == 200
                same_answer(hot, c.get(path, headers=FULL))
                # A long-poll, answered below Starlette too, answers as the full route does.
                same_answer(c.get(path, params={"wait": "0.1"}), c.get(path, headers=FULL))
                not_modified = c.get(path, headers={"If-None-Match": hot.headers["etag"]})
                assert not_modified.status_code == 304
                assert not not_modified.content
            seed = c.get(f"/v1/video/generations/{task_id}").json()["data"]
            assert seed["status"] == "success"
            assert seed["fail_reason"].startswith("http://")
    finally:
        server.stop()


def test_hot_answers_are_counted_and_carry_request_ids(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, server_env(tmp_path))
    server.start()
    try:
        with server.client() as c:
            task_id = create(c)
            server.wait_terminal(task_id)
            for route, path in ((SEED, "/v1/video/generations/"), (VIDEOS, "/v1/videos/")):
                answered, timed = requests_counted(server.url, route, "200")
                for _ in range(25):
                    assert c.get(path + task_id).status_code == 200
                after = requests_counted(server.url, route, "200")
                assert after == (answered + 25, timed + 25)
            mine = c.get(f"/v1/videos/{task_id}", headers={"X-Request-Id": "trace-77"})
            assert mine.headers["x-request-id"] == "trace-77"
            fresh = {c.get(f"/v1/videos/{task_id}").headers["x-request-id"] for _ in range(3)}
            assert len(fresh) == 3
            assert all(re.fullmatch(r"[\w.-]+", i) for i in fresh)
    finally:
        server.stop()


def test_hot_gets_keep_owners_apart_and_end_with_a_revoked_token(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_ADMIN_TOKEN=ADMIN))
    server.start()
    try:
        admin = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        )
        with admin, server.client() as mine:
            made = admin.post("/v1/admin/tokens", json={"name": "other"}).json()["data"]
            other_token = made["token"]
            task_id = create(mine)
            server.wait_terminal(task_id)
            with server.client(other_token) as other:
                for _ in range(2):  # the second time, both tokens are cached
                    assert mine.get(f"/v1/video/generations/{task_id}").status_code == 200
                    for path in (f"/v1/video/generations/{task_id}", f"/v1/videos/{task_id}"):
                        answer = other.get(path)
                        assert answer.status_code == 404, answer.text
                assert other.get("/v1/video/generations/no-such-task").json()["code"] == (
                    "task_not_found"
                )
                assert admin.post(f"/v1/admin/tokens/{made['id']}/revoke").status_code == 200
                refused = other.get(f"/v1/video/generations/{task_id}")
                assert refused.status_code == 401
                assert refused.json()["code"] == "invalid_token"
                assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = httpx.get(
                f"{server.url}/v1/videos/{task_id}", headers={"Authorization": "Bearer rg_nope"}
            )
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "invalid_token"
    finally:
        server.stop()


def test_the_bridge_carries_bodies_streams_ranges_and_heads(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_MAX_BODY_BYTES="200000"))
    server.start()
    try:
        with server.client() as c:
            # A body of many chunks (JSON padded with whitespace, which parsers skip).
            body = (
                json.dumps(
                    {"model": "sandbox-t2v", "prompt": "chunked " + "x" * 3_000, "duration": 1}
                ).encode()
                + b" " * 60_000
            )

            def chunks() -> Any:
                for i in range(0, len(body), 4096):
                    yield body[i : i + 4096]

            made = c.post(
                "/v1/video/generations",
                content=chunks(),
                headers={"Content-Type": "application/json"},
            )
            assert made.status_code == 200, made.text
            task_id = made.json()["task_id"]
            too_big = c.post(
                "/v1/video/generations",
                content=b'{"prompt": "' + b"y" * 300_000 + b'"}',
                headers={"Content-Type": "application/json"},
            )
            assert too_big.status_code == 413
            assert too_big.json()["code"]
            with c.stream("GET", f"/v1/video/generations/{task_id}/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                seen = ""
                for text in events.iter_text():
                    seen += text
                    if "event: status" in seen:
                        break  # and go away mid-stream
            server.wait_terminal(task_id)
            content = f"/v1/video/generations/{task_id}/content"
            whole = c.get(content)
            assert whole.status_code == 200
            assert whole.content[4:8] == b"ftyp"
            head = c.head(content)
            assert head.status_code == 200
            assert not head.content
            assert head.headers["content-length"] == str(len(whole.content))
            part = c.get(content, headers={"Range": "bytes=10-109"})
            assert part.status_code == 206
            assert part.content == whole.content[10:110]
            odd = c.get("/v1/no%20such/route", params={"q": "é"})
            assert odd.status_code == 404
            assert odd.json()["code"] == "not_found"
        # The server is still well after a client left a stream.
        time.sleep(0.2)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        server.stop()
