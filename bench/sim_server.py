"""reelgate's Ark simulator in a process of its own, for bench/engine.py.

In its own process the simulator's work (and its callback deliveries) does not compete with
the tracker under test for the interpreter. Adds ``GET /_bench/done``: every task's id and the
wall time at which it finished upstream. Also makes the callback sender look for changes every
``--callback-tick`` seconds instead of every 50 ms: on a compressed clock those 50 ms of wall
time would be whole upstream seconds of delay that no real upstream adds.

    python bench/sim_server.py --port P --key K --time-scale 30
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reelgate.testing import ArkSimulator


def done_at(sim: ArkSimulator, task_id: str) -> float:
    return float(sim.finished_at(task_id) or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--time-scale", type=float, required=True)
    parser.add_argument("--callback-tick", type=float, default=0.005)
    args = parser.parse_args()
    sim = ArkSimulator(
        api_keys={args.key},
        queued_seconds=0,
        running_seconds=60,
        time_scale=args.time_scale,
        # Real upstreams call back at once; the simulator's 50 ms scan would be 1.5 upstream
        # seconds at a time scale of 30.
        callback_interval_s=args.callback_tick,
    )
    sim.public_url = f"http://127.0.0.1:{args.port}"

    async def done(_request: Request) -> Response:
        tasks = list(sim.tasks)
        callbacks = [c for c in sim.callbacks if c["status"] in ("succeeded", "failed")]
        return JSONResponse(
            {
                "done_at": {t: done_at(sim, t) for t in tasks},
                "callback_urls": sum(1 for t in sim.tasks.values() if "callback_url" in t.body),
                "final_callbacks": len(callbacks),
                "final_callbacks_2xx": sum(1 for c in callbacks if 200 <= c["http_status"] < 300),
            }
        )

    app = sim.app
    app.add_route("/_bench/done", done, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
