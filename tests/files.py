"""A real HTTP file server on loopback for media tests: fixed files, or generated streams of any
size (never held in memory), with optional failures and redirects."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = 256 * 1024


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    generated: dict[str, int] = field(default_factory=dict)  # path -> size in bytes
    failures: deque[int] = field(default_factory=deque)  # statuses to answer first
    redirects: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # Where it listens (a test in a network namespace may give loopback a public address).
    host: str = "127.0.0.1"
    port: int = 0

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}{path}"

    def start(self) -> FileServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.path = self.path.split("?", 1)[0]  # signed CDN URLs carry a query
                owner.hits.append(self.path)
                if owner.failures:
                    self.send_response(owner.failures.popleft())
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("location", owner.redirects[self.path])
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.path in owner.generated:
                    size = owner.generated[self.path]
                    self.send_response(200)
                    self.send_header("content-length", str(size))
                    self.end_headers()
                    block = b"\x00" * CHUNK
                    left = size
                    while left > 0:
                        n = min(left, CHUNK)
                        self.wfile.write(block[:n])
                        left -= n
                    return
                body = owner.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
