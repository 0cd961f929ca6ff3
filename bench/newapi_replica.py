"""A replica of new-api's video-task tracking policy, the baseline of bench/engine.py.

new-api (``shared/spec/peers.md``; its ``TaskPollingLoop`` and issue #4244): sleep 15 s; take
the unfinished tasks (at most ``TASK_QUERY_LIMIT``, 1000, in table order); per channel, fetch
them one at a time with ``GET /tasks/{id}``, pausing 1 s after each; write what changed; repeat.
No list call, no ``callback_url``. Only ``succeeded`` and ``failed`` end a task there (Ark's
``cancelled`` and ``expired`` fall through to "in progress"), so only those end one here.

Every wait is divided by ``time_scale``, the factor by which the simulator compresses upstream
time, so the replica keeps the same pace relative to the tasks as the real thing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

TASKS = "/contents/generations/tasks"
TERMINAL = ("succeeded", "failed")


@dataclass
class NewApiReplica:
    client: httpx.AsyncClient  # base_url: the Ark base URL (…/api/v3), with the key set
    time_scale: float
    loop_s: float = 15.0
    pause_s: float = 1.0
    query_limit: int = 1000
    submitted: list[str] = field(default_factory=list)  # upstream ids, in table order
    finished: dict[str, float] = field(default_factory=dict)  # upstream id → wall time seen
    rounds: int = 0
    looks: int = 0

    async def create(self, model: str, prompt: str) -> str:
        body = {"model": model, "content": [{"type": "text", "text": prompt}], "duration": 5}
        resp = await self.client.post(TASKS, json=body)
        resp.raise_for_status()
        upstream_id = str(resp.json()["id"])
        self.submitted.append(upstream_id)
        return upstream_id

    async def track(self, total: int) -> None:
        """Run the loop until ``total`` tasks are finished (new-api's never stops; the bench's
        does). Rounds that find nothing unfinished make no call and are not counted."""
        while len(self.finished) < total:
            await asyncio.sleep(self.loop_s / self.time_scale)
            unfinished = [i for i in self.submitted if i not in self.finished]
            if unfinished:
                self.rounds += 1
            for upstream_id in unfinished[: self.query_limit]:
                resp = await self.client.get(f"{TASKS}/{upstream_id}")
                self.looks += 1
                if resp.status_code == 200 and resp.json().get("status") in TERMINAL:
                    self.finished[upstream_id] = time.time()
                await asyncio.sleep(self.pause_s / self.time_scale)
