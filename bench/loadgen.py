"""A small keep-alive HTTP/1.1 load generator on raw asyncio sockets (no client library cost).

Used by the bench scripts so the measuring side stays cheap and identical across targets.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _client(host: str, port: int, raw: bytes, until: float, out: Result) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(raw)
            await writer.drain()
            status = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            out.latencies.append(time.perf_counter() - start)
            if b" 200 " in status:
                out.requests += 1
            else:
                out.errors += 1
    finally:
        writer.close()


async def run(
    host: str, port: int, path: str, headers: dict[str, str], *, clients: int, seconds: float
) -> Result:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode()
    out = Result(0, 0, seconds, [])
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(host, port, raw, until, out) for _ in range(clients)))
    return out
