"""Shared fixtures: a real reelgate server process on loopback with its own SQLite file."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
TOKEN_LINE = re.compile(r"^\s+(rg_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """``reelgate serve`` in its own process group, restartable, against one data directory."""

    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    token: str = ""
    output: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> None:
        with (self.workdir / "server.log").open("a") as log:
            self.proc = self._spawn(extra, log)
        assert self.proc.stdout is not None
        # The CLI prints the first token (first start only), then the "listening" line.
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        self.output = "".join(lines)
        if match := TOKEN_LINE.search(self.output):
            self.token = match.group(1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.workdir / 'server.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy in 30 s")

    def _spawn(self, extra: tuple[str, ...], log: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reelgate", "serve", "--port", str(self.port), *extra],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_terminal(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the task ends (the sandbox runs on real time in a live server)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while time.monotonic() < deadline:
                data: dict[str, Any] = c.get(f"/v1/video/generations/{task_id}").json()["data"]
                if data["status"] in ("success", "failure"):
                    return data
                time.sleep(0.1)
        raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def server_env(workdir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        {
            "REELGATE_DATABASE_URL": f"sqlite:///{workdir / 'reelgate.db'}",
            "REELGATE_DATA_DIR": str(workdir / "data"),
            "REELGATE_SANDBOX_QUEUE_SECONDS": "0.2",
            "REELGATE_SANDBOX_RUN_SECONDS": "0.3",
            "REELGATE_WORKER_POLL_INTERVAL": "0.05",
            "REELGATE_TRACKING_TYPICAL_SECONDS": "1",
            "REELGATE_ALLOW_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
            "REELGATE_LOG_LEVEL": "warning",
        }
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole session (tests that restart it make their own)."""
    workdir = tmp_path_factory.mktemp("live")
    server = LiveServer(workdir, server_env(workdir))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path, server_env(tmp_path))
    yield server
    server.stop()


@contextlib.contextmanager
def ark_gateway(
    workdir: Path, key: str, *, queued: float = 0.2, running: float = 0.3, **env: str
) -> Iterator[tuple[LiveServer, Any]]:
    """A live reelgate whose Seedance models go to a fresh Ark simulator (yields both)."""
    from reelgate.testing import ArkSimulator, serve_in_thread

    sim = ArkSimulator(api_keys={key}, queued_seconds=queued, running_seconds=running)
    handle = serve_in_thread(sim)
    server = LiveServer(
        workdir,
        server_env(workdir, REELGATE_ARK_API_KEY=key, REELGATE_ARK_BASE_URL=handle.base_url, **env),
    )
    try:
        server.start()
        yield server, sim
    finally:
        server.stop()
        handle.stop()
