"""A real HTTP receiver on loopback for webhook tests: records every POST, answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``answers`` is a queue of (status, headers) to give; once empty, 200."""

    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # Where it listens (a test in a network namespace may give loopback a public address).
    host: str = "127.0.0.1"
    port: int = 0
    # > 0: answer with a 20-byte body sent one byte at a time over this many seconds.
    trickle_s: float = 0.0

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                owner.received.append(
                    Received(
                        {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                    )
                )
                status, headers = owner.answers.popleft() if owner.answers else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if owner.trickle_s <= 0:
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_header("content-length", "20")
                self.end_headers()
                for _ in range(20):
                    time.sleep(owner.trickle_s / 20)
                    try:
                        self.wfile.write(b".")
                        self.wfile.flush()
                    except OSError:
                        return  # the sender gave up

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
