"""Cheaper status checks on the seed's GET: long-poll (``?wait=``, ``Prefer: wait=``), ETags and
poll hints, against a live server with the sandbox."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


def create(server: LiveServer, **metadata: Any) -> str:
    body = {"model": "sandbox-t2v", "prompt": "wait for me", "duration": 1, "size": "160x120"}
    with server.client() as c:
        r = c.post("/v1/video/generations", json={**body, "metadata": metadata})
    assert r.status_code == 200, r.text
    return str(r.json()["task_id"])


def test_a_long_poll_returns_on_the_status_change(live_server: LiveServer) -> None:
    task_id = create(live_server, queue_seconds=1.5, run_seconds=30)
    with live_server.client() as c:
        first = c.get(f"/v1/video/generations/{task_id}")
        assert first.json()["data"]["status"] == "queued"
        started = time.monotonic()
        waited = c.get(f"/v1/video/generations/{task_id}", params={"wait": 30})
        assert waited.status_code == 200
        assert waited.json()["data"]["status"] == "in_progress"
        assert time.monotonic() - started < 20  # well before the 30 s it could have waited
        assert waited.headers["etag"] != first.headers["etag"]


def submitted_etag(c: httpx.Client, task_id: str) -> str:
    """The task's ETag once the worker has submitted it: the submit is a new version (the status
    stays queued), and it lands moments after the create, maybe between two GETs."""
    for _ in range(200):
        etag = str(c.get(f"/v1/video/generations/{task_id}").headers["etag"])
        if not etag.startswith('W/"1.'):  # version 1: accepted, not yet submitted
            return etag
        time.sleep(0.05)
    raise AssertionError("the task was not submitted in time")


def test_prefer_wait_and_the_etag_give_304_when_nothing_changed(live_server: LiveServer) -> None:
    task_id = create(live_server, queue_seconds=60, run_seconds=60)
    with live_server.client() as c:
        etag = submitted_etag(c, task_id)
        same = c.get(f"/v1/video/generations/{task_id}", headers={"If-None-Match": etag})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["etag"] == etag
        waited = c.get(
            f"/v1/video/generations/{task_id}",
            headers={"If-None-Match": etag, "Prefer": "wait=0.5"},
        )
        assert waited.status_code == 304
        other = c.get(f"/v1/video/generations/{task_id}", headers={"If-None-Match": '"0.0"'})
        assert other.status_code == 200


def test_poll_hints_follow_the_expected_remaining_time(live_server: LiveServer) -> None:
    task_id = create(live_server, queue_seconds=0.1, run_seconds=0.2)
    with live_server.client() as c:
        running = c.get(f"/v1/video/generations/{task_id}")
        if running.json()["data"]["status"] != "success":
            assert 0 <= running.json()["data"]["estimated_progress"] <= 99
            assert running.json()["data"]["eta_seconds"] >= 0
            assert 1 <= int(running.headers["retry-after"]) <= 30
            assert 1000 <= int(running.headers["openai-poll-after-ms"]) <= 30_000
    done = live_server.wait_terminal(task_id)
    assert done["status"] == "success"
    with live_server.client() as c:
        final = c.get(f"/v1/video/generations/{task_id}")
        assert (
            final.json()["data"]["estimated_progress"],
            final.json()["data"]["eta_seconds"],
        ) == (
            100,
            0,
        )
        assert final.json()["data"]["progress"] == "100%"  # the seed's own field is unchanged
        assert "retry-after" not in final.headers
        assert "openai-poll-after-ms" not in final.headers


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"wait": "abc"}, {}),
        ({"wait": "61"}, {}),
        ({"wait": "-1"}, {}),
        ({"wait": "nan"}, {}),
        ({}, {"Prefer": "wait=1e9"}),
    ],
)
def test_a_bad_wait_is_a_clear_400(
    live_server: LiveServer, params: dict[str, str], headers: dict[str, str]
) -> None:
    task_id = create(live_server)
    with live_server.client() as c:
        r = c.get(f"/v1/video/generations/{task_id}", params=params, headers=headers)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_parameter"


def test_many_waiters_wake_together(live_server: LiveServer) -> None:
    task_id = create(live_server, queue_seconds=1, run_seconds=30)
    with live_server.client() as c:
        queued = submitted_etag(c, task_id)  # (a waiter that starts late is answered at once)
    results: list[str] = []

    def wait() -> None:
        with httpx.Client(
            base_url=live_server.url,
            headers={"Authorization": f"Bearer {live_server.token}", "If-None-Match": queued},
            timeout=40,
        ) as c:
            data = c.get(f"/v1/video/generations/{task_id}", params={"wait": 30}).json()["data"]
            results.append(data["status"])

    threads = [threading.Thread(target=wait) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert results == ["in_progress"] * 20
