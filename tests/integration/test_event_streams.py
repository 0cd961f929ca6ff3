"""The seed's event stream against a live server: a token revoked by another process (the CLI)
ends an open stream within the token cache's lifetime, with an ``event: error``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reelgate.core.ids import TOKEN_PREFIX, TOKEN_VISIBLE_CHARS
from tests.conftest import LiveServer, server_env
from tests.integration.test_cli import cli

TTL_S = 1.0


def test_a_revoked_tokens_stream_ends_within_the_token_cache_lifetime(tmp_path: Path) -> None:
    env = server_env(
        tmp_path, REELGATE_TOKEN_CACHE_TTL=str(TTL_S), REELGATE_SSE_KEEPALIVE_SECONDS="2"
    )
    server = LiveServer(tmp_path, env)
    server.start()
    try:
        token = cli(server, "token", "create", "--name", "streamer").stdout.strip()
        with server.client(token) as c:
            body = {"model": "sandbox-t2v", "prompt": "a long one", "duration": 1}
            body["metadata"] = {"queue_seconds": 0, "run_seconds": 120}
            task_id = c.post("/v1/video/generations", json=body).json()["task_id"]
            path = f"/v1/video/generations/{task_id}/events"
            with c.stream("GET", path, timeout=30) as events:
                lines = events.iter_lines()
                while "event: status" not in next(lines):
                    pass
                cli(server, "token", "revoke", token[: len(TOKEN_PREFIX) + TOKEN_VISIBLE_CHARS])
                revoked = time.monotonic()
                seen = []
                for line in lines:
                    assert time.monotonic() - revoked < 30, "the stream outlived its token"
                    seen.append(line)
                    if line.startswith("data:") and "event: error" in seen[-2:-1]:
                        break
                ended_after = time.monotonic() - revoked
                assert json.loads(seen[-1].removeprefix("data:"))["code"] == "invalid_token"
                assert [line for line in lines if line] == []  # the server closed the stream
        # Within the lifetime of the look-up cached before the revocation, plus the stream's
        # check interval (a quarter of it, at least a second) and slack for a busy machine.
        assert ended_after < TTL_S + 1.0 + 5.0
    finally:
        server.stop()
