"""The command line against real processes: start-up errors, tokens, separate worker, uvicorn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import LiveServer, server_env


def cli(server: LiveServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelgate", *args],
        cwd=server.workdir,
        env=server.env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path, REELGATE_PORT="eighty")
    done = subprocess.run(
        [sys.executable, "-m", "reelgate", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("reelgate: invalid setting REELGATE_PORT")


def test_token_lifecycle(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_TOKEN_CACHE_TTL="0"))
    server.start()
    try:
        assert server.token.startswith("rg_")
        assert f"Authorization: Bearer {server.token}" in server.output  # the curl line
        extra = cli(server, "token", "create", "--name", "ci").stdout.strip()
        with server.client(extra) as c:
            assert c.get("/v1/models").status_code == 200
        listing = cli(server, "token", "list").stdout
        assert "ci" in listing
        assert extra not in listing  # plaintext is shown once, never listed
        assert extra[:11] in listing  # the visible prefix is
        revoked = cli(server, "token", "revoke", extra[:11]).stdout
        assert "revoked" in revoked
        with server.client(extra) as c:
            r = c.get("/v1/models")
        assert (r.status_code, r.json()["code"]) == (401, "invalid_token")
        assert cli(server, "token", "revoke", "rg_unknown", check=False).returncode == 1
        db = (tmp_path / "reelgate.db").read_bytes()
        assert extra.encode() not in db  # stored hashed
    finally:
        server.stop()


def test_separate_worker_process_and_uvicorn(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, server_env(tmp_path))
    server.start("--no-worker", "--server", "uvicorn")
    worker = None
    try:
        with server.client() as c:
            task_id = c.post(
                "/v1/video/generations",
                json={"model": "sandbox-t2v", "prompt": "x", "duration": 1, "size": "64x64"},
            ).json()["task_id"]
            assert c.get(f"/v1/video/generations/{task_id}").json()["data"]["status"] == "queued"
        worker = subprocess.Popen(
            [sys.executable, "-m", "reelgate", "worker"],
            cwd=tmp_path,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = server.wait_terminal(task_id)
        assert data["status"] == "success"
        assert httpx.get(data["fail_reason"]).status_code == 200
        shown = json.loads(cli(server, "task", "get", task_id).stdout)
        assert shown["id"] == task_id
        assert shown["status"] == "success"
        assert shown["upstream_id"].startswith("sbx-")
    finally:
        if worker is not None:
            worker.terminate()
            assert worker.wait(timeout=30) == 0
        server.stop()
