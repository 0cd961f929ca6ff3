"""``reelgate serve`` under idle, silent and slow connections: more connections that send nothing
than the server's limit do not lock anyone out, a request head must arrive within
``REELGATE_HTTP_HEADER_TIMEOUT``, and a long-poll longer than that is not cut. Small limits and
timeouts, so that the test holds more connections than the limit and sees them expire."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, server_env

LIMIT = 64
HEADER_TIMEOUT_S = 0.3


@pytest.fixture(params=["granian", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    env = server_env(
        tmp_path,
        REELGATE_HTTP_MAX_CONNECTIONS=str(LIMIT),
        REELGATE_HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT_S),
    )
    live = LiveServer(tmp_path, env)
    live.start("--server", request.param)
    yield live
    live.stop()


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: reelgate\r\nConnection: close\r\n\r\n")
    return sock.recv(64)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(64) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_beyond_the_limit_do_not_lock_out_a_new_one(server: LiveServer) -> None:
    idle = [connect(server) for _ in range(LIMIT + 36)]  # more than the limit, sending nothing
    try:
        started = time.monotonic()
        with connect(server) as probe:
            answer = healthz(probe)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 200")
        assert took < 1.0  # the bound: a new connection is answered within a second
        # Every silent connection was closed by the server once its head was late.
        assert all(closed_by_server(s, 5) for s in idle)
    finally:
        for s in idle:
            s.close()


def test_a_request_head_that_trickles_in_is_cut_off(server: LiveServer) -> None:
    with connect(server) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < 10:
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except OSError:
                cut = True
                break
            if closed_by_server(slow, 0.05):
                cut = True
                break
        assert cut


def test_a_keep_alive_connection_is_closed_when_idle_and_a_long_poll_is_not(
    server: LiveServer,
) -> None:
    with server.client() as c:
        task = {"model": "sandbox-t2v", "prompt": "slow", "duration": 1}
        task["metadata"] = {"queue_seconds": 60, "run_seconds": 60}
        task_id = c.post("/v1/video/generations", json=task).json()["task_id"]
    with connect(server) as conn:
        request = (
            f"GET /v1/video/generations/{task_id}?wait=1 HTTP/1.1\r\nHost: reelgate\r\n"
            f"Authorization: Bearer {server.token}\r\n\r\n"
        )
        conn.sendall(request.encode())
        conn.settimeout(10)
        assert conn.recv(64).startswith(b"HTTP/1.1 200")  # waited past the header timeout
        time.sleep(0.1)  # (the rest of the answer)
        conn.recv(65536)
        assert closed_by_server(conn, 5)  # then idle: closed
