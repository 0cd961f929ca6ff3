"""The official volcengine SDK against reelgate's Ark-native surface, with a reelgate token:
create, get, list, delete; Seedance on the Ark simulator and the sandbox; a create whose answer
is lost to a dropped connection and retried makes one task."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from volcenginesdkarkruntime import Ark

from tests.conftest import LiveServer, ark_gateway

KEY = "ark-native-key"
MODEL = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any]]:
    with ark_gateway(tmp_path_factory.mktemp("ark-native"), KEY) as found:
        yield found


def wait_status(client: Ark, task_id: str, want: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = client.content_generation.tasks.get(task_id=task_id)
        if task.status == want:
            return task
        assert task.status in ("queued", "running"), task
        time.sleep(0.1)
    raise AssertionError(f"{task_id} did not reach {want}")


def test_create_get_list_delete(gateway: tuple[LiveServer, Any]) -> None:
    server, sim = gateway
    with Ark(base_url=f"{server.url}/api/v3", api_key=server.token, max_retries=0) as client:
        created = client.content_generation.tasks.create(
            model=MODEL,
            content=[{"type": "text", "text": "a paper boat --rs 720p"}],
            return_last_frame=True,
        )
        assert created.id.startswith("task_")  # reelgate's id, the same on every surface
        done = wait_status(client, created.id, "succeeded")
        assert done.model == MODEL
        deadline = time.monotonic() + 30
        while not done.content.video_url.startswith(server.url):  # reelgate's durable copy
            assert time.monotonic() < deadline, done.content.video_url
            time.sleep(0.1)
            done = client.content_generation.tasks.get(task_id=created.id)
        assert "/v1/media/mirror/" in done.content.video_url
        assert done.content.last_frame_url
        assert done.usage.total_tokens > 0
        queued = client.content_generation.tasks.create(
            model=MODEL, content=[{"type": "text", "text": "later [sim:queued=60]"}]
        )
        listing = client.content_generation.tasks.list(
            page_num=1, page_size=10, task_ids=[created.id, queued.id], model=MODEL
        )
        assert listing.total == 2
        assert {i.id for i in listing.items} == {created.id, queued.id}
        only = client.content_generation.tasks.list(status="succeeded")
        assert created.id in {i.id for i in only.items}
        assert queued.id not in {i.id for i in only.items}
        client.content_generation.tasks.delete(task_id=queued.id)  # queued: cancelled, gone
        client.content_generation.tasks.delete(task_id=created.id)  # finished: gone
        assert client.content_generation.tasks.list(task_ids=[created.id, queued.id]).total == 0
    upstream = [t for t in sim.tasks.values() if "later" in str(t.body["content"])]
    assert [t.cancelled for t in upstream] in ([True], [])  # withdrawn upstream if it got there


def test_errors_come_in_arks_shape(gateway: tuple[LiveServer, Any]) -> None:
    from volcenginesdkarkruntime._exceptions import ArkAPIError

    server, _ = gateway
    with Ark(base_url=f"{server.url}/api/v3", api_key="rg_wrong", max_retries=0) as client:
        with pytest.raises(ArkAPIError) as info:
            client.content_generation.tasks.get(task_id="task_x")
        assert "invalid_token" in str(info.value)
    r = httpx.post(
        f"{server.url}/api/v3/contents/generations/tasks",
        headers={"Authorization": f"Bearer {server.token}"},
        json={"model": MODEL, "content": [{"type": "text", "text": "x"}], "resolution": "8k"},
    )
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"code", "message", "param", "type"}


class DroppingProxy:
    """Forwards to reelgate, but drops the connection after sending the first create upstream:
    the create happens, its answer is lost, and the SDK retries."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.dropped = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(("127.0.0.1", self.target)) as up:
            conn.settimeout(10)
            up.settimeout(10)
            while True:
                request = _read_http(conn)
                if not request:
                    return
                up.sendall(request)
                answer = _read_http(up)
                if request.startswith(b"POST") and self.dropped == 0:
                    self.dropped += 1
                    return  # the create went through; its answer is lost
                conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def _read_http(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def test_a_create_retried_after_a_dropped_connection_makes_one_task(
    gateway: tuple[LiveServer, Any],
) -> None:
    server, _ = gateway
    proxy = DroppingProxy(server.port)
    try:
        with Ark(
            base_url=f"http://127.0.0.1:{proxy.port}/api/v3", api_key=server.token, max_retries=2
        ) as client:
            # The SDK makes a new X-Client-Request-Id for each retry; a caller's own id is kept
            # across them, and reelgate honours it as an idempotency key.
            created = client.content_generation.tasks.create(
                model=MODEL,
                content=[{"type": "text", "text": "exactly once please"}],
                extra_headers={"X-Client-Request-Id": "order-4711"},
            )
    finally:
        proxy.close()
    assert proxy.dropped == 1
    with server.client() as c:
        mine = c.get("/v1/video/generations", params={"limit": 100}).json()["data"]
    same = [t for t in mine if t["task_id"] == created.id]
    assert len(same) == 1
    with Ark(base_url=f"{server.url}/api/v3", api_key=server.token, max_retries=0) as client:
        listing = client.content_generation.tasks.list(page_size=100)
    prompts = [i.id for i in listing.items]
    assert prompts.count(created.id) == 1
    assert len([i for i in listing.items if i.id == created.id]) == 1
