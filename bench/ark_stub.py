"""A stateless, cheap stand-in for Ark's task API, for load runs where the simulator would be
the bottleneck (its list call sorts every task it holds).

Every id is known and answers ``ARK_STUB_STATUS`` (``running`` or ``succeeded``); creates
answer a fresh ``cgt-`` id. ``GET /_stub/stats`` counts calls per endpoint. Run it with
``granian --interface asgi ark_stub:app`` (one worker, so the counts are whole).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

TASKS = "/api/v3/contents/generations/tasks"
STATUS = os.environ.get("ARK_STUB_STATUS", "running")
_ids = itertools.count()
calls: Counter[str] = Counter()


def _item(task_id: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": STATUS,
        "error": None,
        "created_at": 1,
        "updated_at": 1,
        "resolution": "1080p",
        "ratio": "16:9",
        "duration": 5,
        "framespersecond": 24,
    }
    if STATUS == "succeeded":
        item["content"] = {"video_url": f"https://example.invalid/{task_id}.mp4"}
        item["usage"] = {"completion_tokens": 246_840, "total_tokens": 246_840}
    return item


async def _send(send: Any, body: dict[str, Any], status: int = 200) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path, method = scope["path"], scope["method"]
    more = True
    while more:  # drain the body
        more = (await receive()).get("more_body", False)
    if path == "/_stub/stats":
        await _send(send, {"calls": dict(calls)})
    elif path == TASKS and method == "POST":
        calls["create"] += 1
        await _send(send, {"id": f"cgt-stub-{next(_ids):09d}"})
    elif path == TASKS and method == "GET":
        calls["list"] += 1
        query = parse_qsl(scope["query_string"].decode())
        ids = [v for k, v in query if k == "filter.task_ids"]
        await _send(send, {"items": [_item(i) for i in ids], "total": len(ids)})
    elif path.startswith(TASKS + "/") and method == "GET":
        calls["get"] += 1
        await _send(send, _item(path.rsplit("/", 1)[1]))
    else:
        await _send(send, {"error": {"code": "NotFound", "message": path}}, 404)
