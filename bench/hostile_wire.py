"""The hostile corpus's wire: one request as raw bytes over a fresh loopback connection, with a
deadline for the whole exchange.

No HTTP client library stands between the corpus and the gateway: httpx and h11 refuse to send
non-ASCII header values, raw bytes in a path or a NUL, which is exactly what an attacker sends.
An answer is its status, headers and (bounded) body; no status line before the deadline is a
hang. A request that breaks HTTP's own grammar (controls in a header, bytes outside printable
ASCII in the request line) or a server's size limits may be refused by closing the connection:
``Case.well_formed`` tells those apart, so that only a well-formed request is owed an answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from dataclasses import dataclass, field

MAX_BODY_READ = 1 << 20
# Beyond these, a server may close instead of answering (431/414 are kind, not owed).
LINE_LIMIT = 8192
_FIELD_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
_TARGET = re.compile(rb"^[\x21-\x7e]+$")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass
class Case:
    """One hostile request: what it targets (``route``), what was made hostile (``slot``, e.g.
    ``body.prompt`` or ``header.Range``) with which family of values (``kind``), and its bytes."""

    route: str
    slot: str
    kind: str
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes | None = None

    def request(self, host: bytes) -> bytes:
        lines = [self.method + b" " + self.target + b" HTTP/1.1", b"Host: " + host]
        lines += [name + b": " + value for name, value in self.headers]
        if self.body is not None:
            lines.append(b"Content-Length: %d" % len(self.body))
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + (self.body or b"")

    @property
    def well_formed(self) -> bool:
        """Valid HTTP/1.1 within common server limits: a request that is owed an answer."""
        if not _TOKEN.match(self.method) or not _TARGET.match(self.target):
            return False
        if len(self.target) > LINE_LIMIT:
            return False
        return all(
            _TOKEN.match(n) and _FIELD_VALUE.match(v) and len(v) <= LINE_LIMIT
            for n, v in self.headers
        )

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


@dataclass
class Answer:
    status: int | None  # None: no status line came
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""  # why there is no (whole) answer: timeout, closed, reset, body-timeout
    # Wall-clock time of the exchange (to match server log lines that carry no request id).
    started: float = 0.0
    ended: float = 0.0

    def json_code(self) -> str:
        """The machine code of an error body (any of the three surfaces' shapes), or ''."""
        match = re.search(rb'"code"\s*:\s*"([A-Za-z0-9_.:-]{1,80})"', self.body[:4096])
        return match.group(1).decode() if match else ""


def exchange(port: int, case: Case, timeout: float) -> Answer:
    """Send ``case`` on a new connection to 127.0.0.1:``port``; the answer within ``timeout``."""
    started = time.time()
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as exc:
        return Answer(None, error=f"connect: {exc}", started=started, ended=time.time())
    with sock:
        # The server may answer (413, 431) and close before it has read everything.
        with contextlib.suppress(OSError):
            sock.sendall(case.request(b"127.0.0.1:%d" % port))
        answer = _read(sock, deadline, head_only=case.method == b"HEAD")
    answer.started, answer.ended = started, time.time()
    return answer


def _recv(sock: socket.socket, deadline: float) -> bytes | None:
    """Up to 64 KiB; b'' at the end of the stream; None when the deadline passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    sock.settimeout(left)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None
    except OSError:
        return b""  # reset: the same as a close, for a reader


def _read(sock: socket.socket, deadline: float, *, head_only: bool) -> Answer:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv(sock, deadline)
        if chunk is None:
            return Answer(None, error="timeout")
        if not chunk:
            return Answer(None, error="closed" if not buf else "truncated head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return Answer(None, error=f"bad status line {status_line[:80]!r}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    answer = Answer(int(parts[1]), headers)
    streaming = headers.get("content-type", "").startswith("text/event-stream")
    if head_only or streaming or answer.status in (204, 304):
        answer.body = body
        return answer
    length = headers.get("content-length")
    want = int(length) if length and length.isdigit() else None
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    while len(body) < MAX_BODY_READ:
        if want is not None and len(body) >= want:
            break
        if chunked and body.endswith(b"0\r\n\r\n"):
            break
        chunk = _recv(sock, deadline)
        if chunk is None:
            answer.error = "body-timeout"
            break
        if not chunk:
            break
        body += chunk
    answer.body = _unchunk(body) if chunked else body
    return answer


def _unchunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return out


def reproducer(case: Case, secrets: dict[str, str], limit: int = 300) -> str:
    """The request, readable and short, with tokens replaced by their names."""

    def show(data: bytes) -> str:
        text = repr(data[:limit])
        for secret, name in secrets.items():
            text = text.replace(secret, name)
        return text + (f" …({len(data)} bytes)" if len(data) > limit else "")

    headers = ", ".join(f"{n.decode()}: {show(v)}" for n, v in case.headers)
    out = f"{case.method.decode('latin-1')} {show(case.target)} [{headers}]"
    return out + (f" body={show(case.body)}" if case.body is not None else "")
