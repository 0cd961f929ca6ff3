"""Vidu tracking (issue #19): upstream look-ups per task and staleness of reelgate's worker with
Vidu's signed callbacks, without them, and of a replica of new-api's Vidu policy, in one run.

N tasks (1000; quick 40), created evenly over ``--arrival`` upstream seconds, with upstream
durations drawn uniformly from 30-300 s, run on reelgate's Vidu simulator in a process of its
own (``--serve-sim``), one fresh simulator per tracker, its concurrency cap lifted so every
tracker sees the same timeline. Upstream time is compressed ``--time-scale`` times and the
trackers run on the compressed time (as in bench/engine.py, whose helpers this reuses).

Trackers:
- reelgate with callbacks: a Vidu channel (no ``max_in_flight``), ``public_url`` set, its HTTP
  app serving the callback route: Vidu's signed callbacks are verified and confirmed by a
  batched look-up (``GET /ent/v2/tasks?task_ids=…``);
- reelgate without callbacks: the schedule alone;
- new-api's policy (``relay/channel/task/vidu``, spec §11): no ``callback_url``; every 15 s,
  each unfinished task with ``GET /ent/v2/tasks/{id}/creations``, 1 s apart.

Figures: look-ups (single GETs + list calls, creates apart) per completed task; staleness
(upstream finished -> terminal in the tracker) p50/p99 in upstream seconds; each tracker's
ratios against the new-api baseline of the same run. Printed (``--json``: written), never
asserted; issue #19's targets (as for Ark): with callbacks <= 1.05 look-ups per task, p50 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from engine import Tracked, arrivals, free_port, reelgate_runtime, wait_http, wait_until
from procs import stop

from reelgate.core.request import VideoRequest
from reelgate.settings import Settings

KEY = "bench-vidu-key"
MODEL = "viduq2"


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"vidu task {i} [sim:queued=0][sim:running={rng.uniform(30, 300):.3f}]" for i in range(n)
    ]


# -- the simulator, in a process of its own --------------------------------------------------


def serve_sim(port: int, scale: float) -> None:
    from reelgate.testing.simulator import run_foreground
    from reelgate.testing.vidu_simulator import ViduSimulator

    sim = ViduSimulator(api_keys={KEY}, time_scale=scale, concurrency=10**6)
    sim.callback_retry_s = 5.0 / scale
    # Vidu calls back as a task changes; the simulator checks for changes on a timer, which
    # must not add its own staleness on the compressed clock.
    sim.callback_interval_s = max(0.002, 0.05 / scale)
    run_foreground(sim, "127.0.0.1", port)


@contextmanager
def simulator(scale: float) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-sim", str(port), "--time-scale", str(scale)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_sim/stats", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def report(url: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The simulator's counts, and when each task finished (the simulator's clock: wall)."""
    stats: dict[str, Any] = httpx.get(f"{url}/_sim/stats", timeout=30).json()
    rows = httpx.get(f"{url}/_sim/tasks", timeout=30).json()
    return stats, {r["id"]: r["finished_at"] for r in rows if r["finished_at"] is not None}


def lookups(stats: dict[str, Any]) -> tuple[int, int]:
    calls = stats["calls"]
    creates = sum(
        calls.get(e, 0) for e in ("text2video", "img2video", "start-end2video", "reference2video")
    )
    return calls.get("get", 0) + calls.get("list", 0), creates


# -- reelgate ------------------------------------------------------------------------------


def settings(
    tmp: Path, sim_url: str, *, callbacks: bool, public_url: str, scale: float
) -> Settings:
    channel = {"name": "vidu", "provider": "vidu", "secret": KEY, "base_url": sim_url,
               "max_in_flight": None}  # fmt: skip
    return Settings(
        database_url=f"sqlite:///{tmp / 'reelgate.db'}",
        data_dir=tmp / "data",
        sandbox_enabled=False,
        channels=[channel],  # type: ignore[list-item]
        allow_private_networks=["127.0.0.0/8"],  # type: ignore[list-item]
        log_level="warning",
        public_url=public_url,
        callbacks=callbacks,
        media_mirror=False,
        worker_poll_interval=0.5 / scale,
        worker_lease_seconds=60.0 * scale,
    )


async def track_reelgate(
    texts: Sequence[str], tmp: Path, *, callbacks: bool, scale: float, arrival: float
) -> Tracked:
    result = Tracked("reelgate, callbacks" if callbacks else "reelgate, no callbacks", len(texts))
    port = free_port() if callbacks else None
    start, cpu = time.time(), time.process_time()

    def clock() -> float:
        return start + (time.time() - start) * scale

    seen: dict[str, tuple[float, str]] = {}

    def listener(task: Any) -> None:
        if task.status.terminal and task.id not in seen:
            seen[task.id] = (time.time(), task.upstream_id or "")

    with simulator(scale) as url:
        public = f"http://127.0.0.1:{port}" if port else ""
        config = settings(tmp, url, callbacks=callbacks, public_url=public, scale=scale)
        async with reelgate_runtime(config, clock, scale, port) as runtime:

            def alive() -> None:
                worker = runtime.worker_task
                if worker is not None and worker.done():
                    raise RuntimeError(f"reelgate's worker stopped: {worker.exception()!r}")

            runtime.service.add_listener(listener)
            owner, _ = await runtime.service.create_token("bench")
            async for text in arrivals(texts, arrival / scale):
                await runtime.service.create(
                    owner, VideoRequest(model=MODEL, prompt=text, duration=5)
                )
            finished = await wait_until(lambda: len(seen) == len(texts), 300 / scale + 60, alive)
            result.wall_s = time.time() - start
            result.cpu_s = time.process_time() - cpu
            stats, done_at = report(url)
    result.lookups, result.creates = lookups(stats)
    calls = stats["calls"]
    result.note = f"{calls.get('list', 0)} lists, {calls.get('get', 0)} single GETs"
    if callbacks:
        result.note += f", {stats['callbacks']} callback deliveries"
    for visible, upstream_id in seen.values():
        if upstream_id in done_at:
            result.done += 1
            result.staleness_s.append((visible - done_at[upstream_id]) * scale)
    if not finished:
        result.note = f"timed out: {len(seen)} of {len(texts)} finished; {result.note}"
    return result


# -- new-api's Vidu policy -----------------------------------------------------------------


async def track_newapi(texts: Sequence[str], *, scale: float, arrival: float) -> Tracked:
    """new-api: no callback_url; every 15 s, each unfinished task's GET, 1 s apart."""
    result = Tracked("new-api policy", len(texts))
    start, cpu = time.time(), time.process_time()
    submitted: list[str] = []
    finished: dict[str, float] = {}

    async def poll(client: httpx.AsyncClient) -> None:
        while len(finished) < len(texts):
            await asyncio.sleep(15 / scale)
            unfinished = [i for i in submitted if i not in finished]
            if unfinished:
                result.rounds += 1
            for upstream_id in unfinished:
                resp = await client.get(f"/ent/v2/tasks/{upstream_id}/creations")
                result.task_looks += 1
                if resp.status_code == 200 and resp.json().get("state") in ("success", "failed"):
                    finished[upstream_id] = time.time()
                await asyncio.sleep(1 / scale)

    with simulator(scale) as url:
        headers = {"Authorization": f"Token {KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            tracking = asyncio.create_task(poll(client))
            try:
                async for text in arrivals(texts, arrival / scale):
                    body = {"model": MODEL, "prompt": text, "duration": 5, "resolution": "720p"}
                    made = await client.post("/ent/v2/text2video", json=body)
                    made.raise_for_status()
                    submitted.append(str(made.json()["task_id"]))
                await asyncio.wait_for(tracking, timeout=len(texts) * 3 / scale + 120)
            finally:
                tracking.cancel()
        result.wall_s = time.time() - start
        result.cpu_s = time.process_time() - cpu
        stats, done_at = report(url)
    result.lookups, result.creates = lookups(stats)
    result.done = len(finished)
    result.staleness_s = [
        (seen - done_at[i]) * scale for i, seen in finished.items() if i in done_at
    ]
    return result


# -- main ----------------------------------------------------------------------------------


def print_runs(runs: Sequence[Tracked], args: argparse.Namespace) -> None:
    print(
        f"Vidu tracking: {args.tasks} tasks over {args.arrival:g} upstream s, durations"
        f" U(30, 300) s; time scale {args.time_scale:g}"
    )
    print(
        f"  {'tracker':24} {'done':>5} {'creates':>7} {'look-ups':>8} {'/task':>7}"
        f" {'stale p50':>9} {'p99':>7} {'CPU':>5}"
    )
    for run in runs:
        row = run.row()
        if not run.done:
            print(f"  {run.name:24} {run.note}")
            continue
        print(
            f"  {run.name:24} {run.done:5d} {run.creates:7d} {run.lookups:8d}"
            f" {row['lookups_per_task']:7.3f} {row['staleness_p50_s']:8.1f}s"
            f" {row['staleness_p99_s']:6.1f}s {run.cpu_s / max(run.wall_s, 1e-9):5.0%}"
            + (f"  ({run.note})" if run.note else "")
        )
    base = next((r for r in runs if r.name == "new-api policy" and r.done), None)
    for ours in runs:
        if base is None or ours is base or not ours.done:
            continue
        a, b = ours.row(), base.row()
        print(
            f"  new-api policy / {ours.name}: look-ups per task"
            f" {b['lookups_per_task'] / max(a['lookups_per_task'], 1e-9):.1f}x, staleness p50"
            f" {b['staleness_p50_s'] / max(a['staleness_p50_s'], 1e-9):.1f}x, p99"
            f" {b['staleness_p99_s'] / max(a['staleness_p99_s'], 1e-9):.1f}x"
        )
    print("  targets (issue #19, as for Ark): with callbacks <= 1.05 look-ups per task, p50 <= 1 s")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    texts = prompts(args.tasks, args.seed)
    runs = []
    for callbacks in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(
                await track_reelgate(
                    texts,
                    Path(tmp),
                    callbacks=callbacks,
                    scale=args.time_scale,
                    arrival=args.arrival,
                )
            )
    runs.append(await track_newapi(texts, scale=args.time_scale, arrival=args.arrival))
    print_runs(runs, args)
    return {"quick": args.quick, "time_scale": args.time_scale, "runs": [r.row() for r in runs]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parser.add_argument("--tasks", type=int, help="tasks to track (1000; quick 40)")
    parser.add_argument(
        "--arrival", type=float, help="creates over this many upstream s (300; quick 100)"
    )
    parser.add_argument("--time-scale", type=float, help="upstream s per wall s (10; quick 20)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve-sim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, (full, quick) in {
        "tasks": (1000, 40),
        "arrival": (300.0, 100.0),
        "time_scale": (10.0, 20.0),
    }.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_sim:
        serve_sim(arguments.serve_sim, arguments.time_scale)
        sys.exit(0)
    began = time.monotonic()
    figures = asyncio.run(main(arguments))
    print(f"(Vidu engine bench took {time.monotonic() - began:.0f}s)")
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
