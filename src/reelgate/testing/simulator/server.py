"""Serving a simulator: on loopback in a background thread for tests (``serve_in_thread``), or
in the foreground for ``reelgate simulate`` (``run_foreground``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import uvicorn
from starlette.types import ASGIApp

__all__ = ["Servable", "SimulatorHandle", "run_foreground", "serve_in_thread", "start_server"]


class Servable(Protocol):
    """Anything with an ASGI app that wants to know the address it is served at."""

    public_url: str

    @property
    def base_path(self) -> str:
        """Where the upstream's API lives below the root ("/api/v3"), or ""."""

    @property
    def app(self) -> ASGIApp: ...


@dataclass
class SimulatorHandle:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    base_path: str = ""

    @property
    def base_url(self) -> str:
        """The base URL a provider is configured with."""
        return f"{self.url}{self.base_path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, lifespan: Literal["on", "off"] = "on"
) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Run ``app`` under uvicorn in a daemon thread; returns once it listens (and its port)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="critical", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    return server, thread, int(server.servers[0].sockets[0].getsockname()[1])


def serve_in_thread(sim: Servable, host: str = "127.0.0.1", port: int = 0) -> SimulatorHandle:
    """Run ``sim`` under uvicorn in a background thread; real HTTP on loopback."""
    server, thread, bound = start_server(sim.app, host, port)
    url = f"http://{host}:{bound}"
    sim.public_url = url
    return SimulatorHandle(url, server, thread, sim.base_path)


def run_foreground(sim: Servable, host: str, port: int) -> None:
    """Serve ``sim`` until interrupted (``reelgate simulate``)."""
    sim.public_url = f"http://{host}:{port}"
    uvicorn.run(sim.app, host=host, port=port, log_level="warning")
