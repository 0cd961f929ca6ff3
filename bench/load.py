"""1000 concurrent clients polling and long-polling one gateway: errors and latency percentiles.

reelgate runs under granian with one worker pinned to CPU 0 (the load on CPU 1), on SQLite, with
sandbox tasks that stay unfinished for the whole run (so long-polls really wait), tasks that end
during it (so waiters really wake), and tasks already done. Clients keep their connection:

- **pollers** (80 %) GET a task's status in a loop, as the seed's examples do;
- **long-pollers** (20 %) GET it with ``?wait=5`` and the last ``ETag`` as ``If-None-Match``,
  answered at a change or after the wait (200 or 304).

The baseline, measured in the same run: the same pollers against a bare Starlette handler that
returns the same body under the same server. Prints requests, errors, p50/p99/max per kind, and
the ratio of reelgate's poll p99 to the baseline's.

Then, on the same server, **many long-polls on one task** (``BENCH_LOAD_WAITERS``, default as many
as clients): a fifth of the clients poll the other tasks alone for half the time, then beside the
long-pollers, all of them holding ``?wait=`` on one task that does not change. Reported: the task
rows the server read per second in each half (its ``reelgate_task_reads_total``), the pollers'
p99 beside the long-polls against alone (target: at most 1.5 times), and how far past its
``wait`` a long-poll was answered. ``BENCH_LOAD_CLIENTS`` and ``BENCH_LOAD_SECONDS`` shrink it;
``--json PATH`` also writes the figures there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from procs import stop
from status_get import start_bare, start_reelgate, wait_healthy

CLIENTS = int(os.environ.get("BENCH_LOAD_CLIENTS", "1000"))
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "20"))
LONG_SHARE = 0.2
WAIT_S = 5
PORT, BARE_PORT = 18720, 18721
WAITERS = int(os.environ.get("BENCH_LOAD_WAITERS", str(CLIENTS)))
HALF_S = SECONDS / 2
HOLD_WAIT_S = max(1, min(5, int(HALF_S)))  # the long-polls' wait on the one task
TARGET_RATIO = 1.5


@dataclass
class Kind:
    name: str
    ok: int = 0
    not_modified: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def figures(self) -> dict[str, float | int | str]:
        return {
            "name": self.name,
            "answers": self.ok + self.not_modified,
            "not_modified": self.not_modified,
            "errors": self.errors,
            "p50_ms": self.pct(50),
            "p99_ms": self.pct(99),
            "max_ms": max(self.latencies, default=0) * 1000,
        }

    def line(self) -> str:
        total = self.ok + self.not_modified
        return (
            f"  {self.name:<22} {total:8d} answers ({self.not_modified} were 304)  errors "
            f"{self.errors:4d}  p50 {self.pct(50):8.2f} ms  p99 {self.pct(99):8.2f} ms  "
            f"max {max(self.latencies, default=0) * 1000:8.2f} ms"
        )


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, str]:
    writer.write(raw)
    await writer.drain()
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, etag = 0, ""
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"etag":
            etag = value.strip().decode()
    await reader.readexactly(length)
    return status, etag


async def _client(
    port: int,
    paths: list[str],
    token: str,
    long: bool,
    until: float,
    out: Kind,
    wait: int = WAIT_S,
) -> None:
    rng = random.Random()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        out.errors += 1
        return
    etags: dict[str, str] = {}
    try:
        while time.perf_counter() < until:
            path = rng.choice(paths)
            query, extra = "", ""
            if long:
                query = f"?wait={wait}"
                if path in etags:
                    extra = f"If-None-Match: {etags[path]}\r\n"
            raw = (
                f"GET {path}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\n{extra}\r\n"
            ).encode()
            start = time.perf_counter()
            try:
                status, etag = await _exchange(reader, writer, raw)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                out.errors += 1
                return
            out.latencies.append(time.perf_counter() - start)
            if status == 200:
                out.ok += 1
                if etag:
                    etags[path] = etag
            elif status == 304:
                out.not_modified += 1
            else:
                out.errors += 1
    finally:
        writer.close()


async def run_load(port: int, paths: list[str], token: str, *, long_share: float) -> list[Kind]:
    polls, longs = Kind("polls"), Kind(f"long-polls (wait={WAIT_S})")
    n_long = int(CLIENTS * long_share)
    until = time.perf_counter() + SECONDS
    await asyncio.gather(
        *(
            _client(port, paths, token, i < n_long, until, longs if i < n_long else polls)
            for i in range(CLIENTS)
        )
    )
    return [polls, longs] if n_long else [polls]


def task_reads(base: str) -> float:
    """Task rows the server has read so far (all reasons)."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("reelgate_task_reads_total{")
    )


async def _half(
    port: int, others: list[str], token: str, hot: str, waiters: int
) -> tuple[Kind, Kind, float]:
    """Pollers on ``others`` for half the time, beside ``waiters`` long-polls on ``hot``: the
    pollers, the long-polls and the task rows read per second meanwhile."""
    base = f"http://127.0.0.1:{port}"
    polls = Kind("polls, alone" if not waiters else f"polls, beside {waiters} long-polls")
    longs = Kind(f"long-polls on one task (wait={HOLD_WAIT_S})")
    before, started = task_reads(base), time.perf_counter()
    until = started + HALF_S
    await asyncio.gather(
        *(_client(port, others, token, False, until, polls) for _ in range(max(1, CLIENTS // 5))),
        *(_client(port, [hot], token, True, until, longs, HOLD_WAIT_S) for _ in range(waiters)),
    )
    per_second = (task_reads(base) - before) / (time.perf_counter() - started)
    return polls, longs, per_second


def one_task(port: int, paths: list[str], token: str) -> dict[str, object]:
    """The many-long-polls-on-one-task scenario (see the module docstring)."""
    hot, others = paths[0], paths[1:]  # (paths[0] stays unfinished for the whole run)
    alone, _, reads_alone = asyncio.run(_half(port, others, token, hot, 0))
    beside, longs, reads_beside = asyncio.run(_half(port, others, token, hot, WAITERS))
    ratio = beside.pct(99) / alone.pct(99) if alone.latencies else float("nan")
    late = sorted(max(0.0, t - HOLD_WAIT_S) for t in longs.latencies) or [0.0]
    print(f"{WAITERS} long-polls on one task beside {max(1, CLIENTS // 5)} pollers:")
    for kind in (alone, beside, longs):
        print(kind.line())
    print(f"  task rows read per second: {reads_alone:.1f} alone, {reads_beside:.1f} beside")
    print(f"  poll p99 beside / alone = {ratio:.2f} (target <= {TARGET_RATIO})")
    print(
        f"  long-polls answered past their wait (queueing in the server included): "
        f"p50 {late[len(late) // 2] * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms"
    )
    return {
        "waiters": WAITERS,
        "wait_s": HOLD_WAIT_S,
        "alone": alone.figures(),
        "beside": beside.figures(),
        "long_polls": longs.figures(),
        "reads_per_s_alone": reads_alone,
        "reads_per_s_beside": reads_beside,
        "p99_ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "late_p50_ms": late[len(late) // 2] * 1000,
        "late_max_ms": late[-1] * 1000,
        "errors": alone.errors + beside.errors + longs.errors,
    }


def make_tasks(base: str, token: str) -> list[str]:
    """Task paths: unfinished for the whole run, ending during it, and already done."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "sandbox-t2v", "prompt": "load", "duration": 1, "size": "128x128"}
    paths = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for i in range(60):
            queue = 600 if i < 30 else 2 + (i - 30) * SECONDS / 40
            made = c.post(
                "/v1/video/generations",
                json={**body, "metadata": {"queue_seconds": queue, "run_seconds": 0.5}},
            )
            paths.append(f"/v1/video/generations/{made.json()['task_id']}")
        done = c.post("/v1/video/generations", json=body).json()["task_id"]
        while c.get(f"/v1/video/generations/{done}").json()["data"]["status"] != "success":
            time.sleep(0.2)
        paths.append(f"/v1/video/generations/{done}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, token = start_reelgate(work, PORT)
        try:
            base = f"http://127.0.0.1:{PORT}"
            wait_healthy(f"{base}/healthz")
            paths = make_tasks(base, token)
            ours = asyncio.run(run_load(PORT, paths, token, long_share=LONG_SHARE))
            body = httpx.get(base + paths[-1], headers={"Authorization": f"Bearer {token}"})
            shared = one_task(PORT, paths, token)
        finally:
            stop(proc)
        (work / "body.json").write_bytes(body.content)
        bare = start_bare(work / "body.json", BARE_PORT)
        try:
            wait_healthy(f"http://127.0.0.1:{BARE_PORT}/v1/video/generations/x")
            theirs = asyncio.run(run_load(BARE_PORT, paths, token, long_share=0))
        finally:
            stop(bare)
    print(f"{CLIENTS} concurrent keep-alive clients for {SECONDS:g} s, server on 1 core")
    print("reelgate (SQLite, worker in-process):")
    for kind in ours:
        print(kind.line())
    print("baseline, bare Starlette returning the same body (pollers only):")
    print(theirs[0].line())
    ratio = ours[0].pct(99) / theirs[0].pct(99) if theirs[0].latencies else float("nan")
    print(f"  poll p99: reelgate / bare starlette = {ratio:.2f}")
    errors = sum(k.errors for k in ours) + int(str(shared["errors"]))
    print(json.dumps({"errors": errors, "poll_p99_ms": round(ours[0].pct(99), 2)}))
    if args.json:
        figures = {
            "clients": CLIENTS,
            "seconds": SECONDS,
            "long_share": LONG_SHARE,
            "reelgate": [kind.figures() for kind in ours],
            "bare_starlette": theirs[0].figures(),
            "poll_p99_ratio": ratio,
            "one_task": shared,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
