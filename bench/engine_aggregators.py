"""Task engine on the aggregators (issue #21): upstream look-ups per task and staleness for fal
and Replicate, with their signed webhooks and without, against a fixed-interval poller (the
common gateway loop: every task's status every ``--poll`` seconds) in the same run.

For each aggregator, N tasks (``--tasks``) are created at once on its simulator (in this
process, on loopback), with running times drawn uniformly from ``--min``..``--max`` seconds
(``[sim:running=S]`` markers, nothing queued). Trackers: reelgate's engine (this process, the
real clock) with webhooks (``public_url`` set: each create carries reelgate's callback address;
fal's and Replicate's webhooks are verified, then confirmed by one look-up), reelgate polling
only, and the fixed-interval poller. Figures: look-ups (fal: status and result calls;
Replicate: prediction GETs) per completed task; staleness (the upstream's end → terminal in the
tracker) p50/p99 in seconds; and the poller's figures as ratios of reelgate's. Printed (and
with ``--json`` written), never asserted. ``--quick`` is a smoke run.

Helpers (the runtime with its HTTP app, percentiles, arrivals, ports) come from ``engine.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reelgate.core.request import VideoRequest
from reelgate.settings import Settings
from reelgate.testing import serve_in_thread
from reelgate.testing.fal_simulator import FalSimulator
from reelgate.testing.replicate_simulator import ReplicateSimulator

sys.path.insert(0, str(Path(__file__).parent))
import engine as base

KEY = "bench-aggregator-key"


@dataclass(frozen=True)
class Upstream:
    """One aggregator under test: its simulator, model, and how to read its counts."""

    name: str
    model: str
    make: Callable[[], Any]
    lookups: Callable[[Any], int]
    ended_at: Callable[[Any, str], float | None]  # upstream id → when it ended (sim time)
    poll: Callable[[httpx.AsyncClient, str], Any]  # the poller's status request


def _fal_end(sim: FalSimulator, upstream_id: str) -> float | None:
    request = sim.requests.get(upstream_id.rpartition("/")[2])
    if request is None:
        return None
    slot = sim._plan(request.key).get(request.id)
    return slot[1] if slot else None


def _replicate_end(sim: ReplicateSimulator, upstream_id: str) -> float | None:
    prediction = sim.predictions.get(upstream_id)
    return sim.times(prediction)[1] if prediction is not None else None


FAL = Upstream(
    "fal",
    "kling-v2-1-master",
    lambda: FalSimulator(api_keys={KEY}, queued_seconds=0, concurrency=None),
    lambda sim: sim.calls["status"] + sim.calls["result"],
    _fal_end,
    lambda client, uid: client.get(
        f"/{uid.rpartition('/')[0]}/requests/{uid.rpartition('/')[2]}/status"
    ),
)
REPLICATE = Upstream(
    "replicate",
    "kling-v2-1-master",
    lambda: ReplicateSimulator(api_keys={KEY}, queued_seconds=0, create_rpm=None, other_rpm=None),
    lambda sim: sim.calls["get"],
    _replicate_end,
    lambda client, uid: client.get(f"/v1/predictions/{uid}"),
)


@dataclass
class Run:
    tracker: str
    upstream: str
    tasks: int
    done: int = 0
    lookups: int = 0
    staleness: tuple[float, ...] = ()

    def row(self) -> dict[str, Any]:
        stale = sorted(self.staleness)
        return {
            "tracker": self.tracker,
            "upstream": self.upstream,
            "tasks": self.tasks,
            "done": self.done,
            "lookups_per_task": self.lookups / max(1, self.done),
            "staleness_p50_s": base.percentile(stale, 50),
            "staleness_p99_s": base.percentile(stale, 99),
        }


def prompts(n: int, low: float, high: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"bench {i} [sim:queued=0][sim:running={rng.uniform(low, high):.3f}]" for i in range(n)]


def settings_for(up: Upstream, url: str, tmp: Path, *, webhooks: bool, port: int) -> Settings:
    options = {"jwks_url": f"{url}/.well-known/jwks.json"} if up.name == "fal" else {}
    channel = {"name": up.name, "provider": up.name, "secret": KEY, "base_url": url,
               "options": options, "max_in_flight": 100000}  # fmt: skip
    return Settings(
        database_url=f"sqlite:///{tmp / f'{up.name}-{webhooks}.db'}",
        data_dir=tmp / "data",
        sandbox_enabled=False,
        channels=[channel],
        allow_private_networks=["127.0.0.0/8"],
        log_level="warning",
        media_mirror=False,
        public_url=f"http://127.0.0.1:{port}" if webhooks else "",
        callbacks=webhooks,
    )


async def track_reelgate(up: Upstream, texts: Sequence[str], tmp: Path, *, webhooks: bool) -> Run:
    run = Run(f"reelgate, {'webhooks' if webhooks else 'polling'}", up.name, len(texts))
    sim = up.make()
    handle = serve_in_thread(sim)
    seen: dict[str, tuple[float, str]] = {}

    def listener(task: Any) -> None:
        if task.status.terminal and task.id not in seen:
            seen[task.id] = (time.time(), task.upstream_id or "")

    port = base.free_port()
    settings = settings_for(up, handle.base_url, tmp, webhooks=webhooks, port=port)
    try:
        async with base.reelgate_runtime(settings, time.time, 1.0, port) as runtime:
            runtime.service.add_listener(listener)
            owner, _ = await runtime.service.create_token("bench")
            for text in texts:
                await runtime.service.create(owner, VideoRequest(model=up.model, prompt=text))
            await base.wait_until(lambda: len(seen) == len(texts), 600, lambda: None)
    finally:
        handle.stop()
    run.lookups = up.lookups(sim)
    stale = []
    for visible, upstream_id in seen.values():
        ended = up.ended_at(sim, upstream_id)
        if ended is not None:
            stale.append(max(0.0, visible - ended))
    run.done, run.staleness = len(stale), tuple(stale)
    return run


async def track_poller(up: Upstream, texts: Sequence[str], interval: float) -> Run:
    """Every unfinished task's status every ``interval`` seconds (fal: then its result)."""
    run = Run(f"poller every {interval:g} s", up.name, len(texts))
    sim = up.make()
    handle = serve_in_thread(sim)
    scheme = "Key" if up.name == "fal" else "Bearer"
    headers = {"Authorization": f"{scheme} {KEY}"}
    stale: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=handle.base_url, headers=headers, timeout=30) as c:
            pending = []
            for text in texts:
                body: dict[str, Any] = {"prompt": text}
                if up.name == "fal":
                    made = await c.post("/fal-ai/kling-video/v2.1/master/text-to-video", json=body)
                    pending.append(f"fal-ai/kling-video/{made.json()['request_id']}")
                else:
                    made = await c.post(
                        "/v1/models/kwaivgi/kling-v2.1-master/predictions", json={"input": body}
                    )
                    pending.append(made.json()["id"])
            while pending:
                await asyncio.sleep(interval)
                for uid in list(pending):
                    status = (await up.poll(c, uid)).json().get("status")
                    if status in ("COMPLETED", "succeeded", "failed", "canceled"):
                        if up.name == "fal":
                            app, _, rid = uid.rpartition("/")
                            await c.get(f"/{app}/requests/{rid}")
                        ended = up.ended_at(sim, uid)
                        stale.append(max(0.0, time.time() - (ended or time.time())))
                        pending.remove(uid)
    finally:
        handle.stop()
    run.lookups = up.lookups(sim)
    run.done, run.staleness = len(stale), tuple(stale)
    return run


def report(runs: Sequence[Run]) -> None:
    print(
        f"  {'upstream':9} {'tracker':22} {'done':>5} {'look-ups/task':>13} {'p50':>7} {'p99':>7}"
    )
    for run in runs:
        r = run.row()
        print(
            f"  {run.upstream:9} {run.tracker:22} {run.done:5d} {r['lookups_per_task']:13.2f}"
            f" {r['staleness_p50_s']:6.2f}s {r['staleness_p99_s']:6.2f}s"
        )
    for name in ("fal", "replicate"):
        poller = next((r.row() for r in runs if r.upstream == name and "poller" in r.tracker), None)
        for ours in (r.row() for r in runs if r.upstream == name and "reelgate" in r.tracker):
            if poller is None or not ours["done"]:
                continue
            ratio = {
                k: poller[k] / max(ours[k], 1e-3)
                for k in ("lookups_per_task", "staleness_p50_s", "staleness_p99_s")
            }
            print(
                f"  {name}: poller / {ours['tracker']}: look-ups per task"
                f" {ratio['lookups_per_task']:.1f}x, staleness p50"
                f" {ratio['staleness_p50_s']:.1f}x, p99 {ratio['staleness_p99_s']:.1f}x"
            )


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    texts = prompts(args.tasks, args.min, args.max, args.seed)
    print(
        f"aggregators: {args.tasks} tasks each, running U({args.min:g}, {args.max:g}) s, created"
        f" at once; the poller looks every {args.poll:g} s"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for up in (FAL, REPLICATE):
            runs.append(await track_reelgate(up, texts, Path(tmp), webhooks=True))
            runs.append(await track_reelgate(up, texts, Path(tmp), webhooks=False))
            runs.append(await track_poller(up, texts, args.poll))
    report(runs)
    return [r.row() for r in runs]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 min)")
    parser.add_argument("--tasks", type=int, help="tasks per aggregator (100; quick 10)")
    parser.add_argument("--min", type=float, help="shortest run, s (5; quick 1)")
    parser.add_argument("--max", type=float, help="longest run, s (40; quick 3)")
    parser.add_argument("--poll", type=float, default=5.0, help="the poller's interval, s")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    defaults = {"tasks": (100, 10), "min": (5.0, 1.0), "max": (40.0, 3.0)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    rows = asyncio.run(main(arguments))
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))
