"""The Ark simulator's ``callback_url`` deliveries: a POST of the task object on every change.

As documented: every status change (queued, running, succeeded, failed, expired) is posted;
for succeeded and failed, a delivery without a 2xx within the timeout is retried three times.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from reelgate.testing.ark_simulator import ArkSimulator

RETRIED = ("succeeded", "failed")
FINAL = ("succeeded", "failed", "expired", "cancelled")


class CallbackSender:
    def __init__(self, sim: ArkSimulator, *, interval_s: float = 0.05) -> None:
        self.sim = sim
        self.interval_s = interval_s
        self._sent: dict[str, str] = {}
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.sim.callback_timeout_s) as client:
            try:
                while True:
                    self.tick(client)
                    await asyncio.sleep(self.interval_s)
            finally:
                for job in self._inflight:
                    job.cancel()

    def tick(self, client: httpx.AsyncClient) -> None:
        # Only tasks with a change still to post: a final status is the last, so once its
        # delivery (retries and all) is under way, the task leaves the watch.
        for task in list(self.sim.callback_watch.values()):
            if self.sim.tasks.get(task.id) is not task:  # deleted before its end was seen
                self._forget(task.id)
                continue
            status = self.sim.status(task)
            if self._sent.get(task.id) == status:
                continue
            self._sent[task.id] = status
            if status in FINAL:
                self._forget(task.id)
            job = asyncio.get_running_loop().create_task(
                self._deliver(client, task.body["callback_url"], self.sim.view(task))
            )
            self._inflight.add(job)
            job.add_done_callback(self._inflight.discard)

    def _forget(self, task_id: str) -> None:
        self.sim.callback_watch.pop(task_id, None)
        self._sent.pop(task_id, None)

    async def _deliver(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> None:
        attempts = 4 if payload["status"] in RETRIED else 1
        for attempt in range(1, attempts + 1):
            status_code = 0
            with contextlib.suppress(httpx.HTTPError):
                status_code = (await client.post(url, json=payload)).status_code
            self.sim.callbacks.append(
                {
                    "id": payload["id"],
                    "status": payload["status"],
                    "url": url,
                    "attempt": attempt,
                    "http_status": status_code,
                }
            )
            if 200 <= status_code < 300:
                return
            if attempt < attempts:
                await asyncio.sleep(self.sim.callback_retry_s)
