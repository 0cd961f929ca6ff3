"""Cancel, list and server-sent events on the seed's surface, against a live server (sandbox)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, server_env


def create(c: httpx.Client, prompt: str = "x", **metadata: Any) -> str:
    body = {"model": "sandbox-t2v", "prompt": prompt, "duration": 1, "size": "160x120"}
    r = c.post("/v1/video/generations", json={**body, "metadata": metadata})
    assert r.status_code == 200, r.text
    return str(r.json()["task_id"])


def events(c: httpx.Client, task_id: str, **headers: str) -> list[dict[str, Any]]:
    """Read the whole stream (it ends after the terminal event)."""
    out: list[dict[str, Any]] = []
    with c.stream("GET", f"/v1/video/generations/{task_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in r.iter_lines():
            if not line:
                if "event" in event:
                    out.append(event)
                event = {}
            elif line.startswith(":"):
                out.append({"comment": line})
            else:
                name, _, value = line.partition(": ")
                event[name] = json.loads(value) if name == "data" else value
    return out


def test_events_stream_each_status_then_end(live_server: LiveServer) -> None:
    with live_server.client() as c:
        task_id = create(c, queue_seconds=0.5, run_seconds=0.5)
        seen = [e for e in events(c, task_id) if "event" in e]
        assert [e["data"]["status"] for e in seen] == ["queued", "in_progress", "success"]
        assert all(e["event"] == "status" for e in seen)
        ids = [int(e["id"]) for e in seen]
        assert ids == sorted(ids)
        polled = c.get(f"/v1/video/generations/{task_id}").json()["data"]
        assert seen[-1]["data"] == polled  # the same object as the GET
        content = c.get(f"/v1/video/generations/{task_id}/content")  # the sandbox's own render
        assert (content.status_code, content.headers["content-type"]) == (200, "video/mp4")
        assert content.content[4:8] == b"ftyp"
        # Resume after the last event seen: only what came after (here: nothing but the end).
        again = [e for e in events(c, task_id, **{"Last-Event-ID": seen[0]["id"]}) if "event" in e]
        assert [e["data"]["status"] for e in again] == ["success"]
        assert [
            e for e in events(c, task_id, **{"Last-Event-ID": seen[-1]["id"]}) if "event" in e
        ] == []


def test_events_keep_idle_connections_alive(tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("sse")
    server = LiveServer(workdir, server_env(workdir, REELGATE_SSE_KEEPALIVE_SECONDS="0.2"))
    server.start()
    try:
        with server.client() as c:
            task_id = create(c, queue_seconds=1.5, run_seconds=0.1)
            stream = events(c, task_id)
    finally:
        server.stop()
    assert {"comment": ": keep-alive"} in stream
    assert [e["data"]["status"] for e in stream if "event" in e][-1] == "success"


def test_cancel_in_each_state(live_server: LiveServer) -> None:
    with live_server.client() as c:
        waiting = create(c, queue_seconds=60, run_seconds=1)
        r = c.post(f"/v1/video/generations/{waiting}/cancel")
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert (data["status"], data["error"]["code"]) == ("failure", "cancelled")
        assert c.post(f"/v1/video/generations/{waiting}/cancel").status_code == 200  # again: fine
        polled = c.get(f"/v1/video/generations/{waiting}").json()["data"]
        assert polled["status"] == "failure"
        assert polled["error"]["code"] == "cancelled"
        # Whichever wrote first: the cancel itself, or the worker seeing it upstream.
        assert polled["fail_reason"] in ("cancelled by the client", "task was cancelled")

        running = create(c, queue_seconds=0, run_seconds=60)
        for _ in range(200):
            if c.get(f"/v1/video/generations/{running}").json()["data"]["status"] == "in_progress":
                break
            c.get(f"/v1/video/generations/{running}", params={"wait": 5})
        r = c.post(f"/v1/video/generations/{running}/cancel")
        assert r.status_code == 409
        assert r.json()["code"] == "not_cancellable"

        done = create(c)
    assert live_server.wait_terminal(done)["status"] == "success"
    with live_server.client() as c:
        r = c.post(f"/v1/video/generations/{done}/cancel")
        assert (r.status_code, r.json()["code"]) == (409, "not_cancellable")
        assert c.post("/v1/video/generations/task_nope/cancel").status_code == 404


def test_list_pages_newest_first_and_only_own_tasks(live_server: LiveServer) -> None:
    with live_server.client() as c:
        other_token = c.post  # placeholder to keep the client open while creating
        assert other_token
        mine = [create(c, f"list {i}", queue_seconds=60) for i in range(7)]
    stranger = httpx.post(
        f"{live_server.url}/v1/video/generations",
        json={"model": "sandbox-t2v", "prompt": "not yours"},
    )
    assert stranger.status_code == 401
    with live_server.client() as c:
        seen: list[str] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 3, "status": "queued"}
            if after:
                params["after"] = after
            page = c.get("/v1/video/generations", params=params).json()
            seen += [t["task_id"] for t in page["data"]]
            assert all(t["status"] == "queued" for t in page["data"])
            if not page["has_more"]:
                assert page["next_after"] is None
                break
            after = page["next_after"]
        assert set(mine) <= set(seen)
        assert len(seen) == len(set(seen))  # stable paging: nothing twice
        order = [s for s in seen if s in mine]
        assert order == list(reversed(mine))  # newest first
        for bad in (
            {"limit": 0},
            {"limit": 101},
            {"status": "done"},
            {"after": "task_x"},
            {"x": 1},
        ):
            r = c.get("/v1/video/generations", params=bad)
            assert r.status_code == 400, bad
        for task_id in mine:
            c.post(f"/v1/video/generations/{task_id}/cancel")
