"""Structured logs: one JSON object per line, the creating request's id on every line about a
task (worker submit, its end, its webhook) and on the webhook itself; no token, no prompt."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.conftest import LiveServer, server_env
from tests.receiver import Receiver

PROMPT = "a very particular prompt about a lighthouse"


def test_a_request_id_follows_its_task_from_create_to_webhook(tmp_path: Path) -> None:
    hook = Receiver().start()
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_LOG_LEVEL="info"))
    server.start()
    try:
        with server.client() as c:
            assert c.put("/v1/webhook", json={"url": hook.url}).status_code == 200
            created = c.post(
                "/v1/video/generations",
                json={"model": "sandbox-t2v", "prompt": PROMPT, "duration": 1, "size": "160x120"},
                headers={"X-Request-Id": "trace-abc-123"},
            )
            assert created.headers["x-request-id"] == "trace-abc-123"
            task_id = created.json()["task_id"]
            assert server.wait_terminal(task_id)["status"] == "success"
            # Without a usable id of its own, a request gets one.
            other = c.get("/v1/models", headers={"X-Request-Id": "bad id with spaces"})
            assert other.headers["x-request-id"].startswith("req_")
        deadline = time.monotonic() + 20
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
        hook.stop()
    assert hook.received[0].headers.get("x-request-id") == "trace-abc-123"

    text = (tmp_path / "server.log").read_text()
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"event", "level", "timestamp", "logger"} <= set(line) for line in lines)
    about = [line for line in lines if line.get("task_id") == task_id]
    events = {line["event"].split(" ")[0] + " " + line["event"].split(" ")[1] for line in about}
    assert {"task submitted", "task ended"} <= events
    assert any(line["event"].startswith("webhook ") for line in about)
    assert {line.get("request_id") for line in about} == {"trace-abc-123"}
    assert PROMPT not in text
    assert server.token not in text
    assert server.token[:12] not in text  # not even a long part of it
