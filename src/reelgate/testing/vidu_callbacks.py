"""The Vidu simulator's ``callback_url`` deliveries, signed as Vidu signs them.

As documented (spec §7): a POST of the task as ``GET /tasks/{id}/creations`` shows it when its
state becomes ``processing``, ``success`` or ``failed``; a ``success`` or ``failed`` delivery
without a 2xx is sent again three times. Each attempt carries a fresh ``Date`` and
``x-request-nonce`` and the HMAC-SHA256 signature over the callback URL, keyed with the API
key that created the task (``reelgate.providers.vidu.signature``: one implementation of the
documented scheme, checked against the official example by the unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from reelgate.providers.vidu.signature import signed_headers

if TYPE_CHECKING:
    from reelgate.testing.vidu_simulator import ViduSimulator, ViduTask

DELIVERED = ("processing", "success", "failed")
RETRIED = ("success", "failed")


class CallbackSender:
    def __init__(self, sim: ViduSimulator, *, interval_s: float = 0.05) -> None:
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
        for task in list(self.sim.callback_watch.values()):
            if self.sim.tasks.get(task.id) is not task:
                self._forget(task.id)
                continue
            state = self.sim.state(task)
            if state not in DELIVERED or self._sent.get(task.id) == state:
                continue
            self._sent[task.id] = state
            if state in RETRIED:
                self._forget(task.id)
            job = asyncio.get_running_loop().create_task(self._deliver(client, task))
            self._inflight.add(job)
            job.add_done_callback(self._inflight.discard)

    def _forget(self, task_id: str) -> None:
        self.sim.callback_watch.pop(task_id, None)
        self._sent.pop(task_id, None)

    async def _deliver(self, client: httpx.AsyncClient, task: ViduTask) -> None:
        url = str(task.body["callback_url"])
        payload: dict[str, Any] = self.sim.view(task)
        attempts = 4 if payload["state"] in RETRIED else 1
        body = json.dumps(payload).encode()
        for attempt in range(1, attempts + 1):
            headers = signed_headers(task.key, url, self.sim.now(), str(uuid.uuid4()))
            status_code = 0
            with contextlib.suppress(httpx.HTTPError):
                response = await client.post(
                    url, content=body, headers={**headers, "Content-Type": "application/json"}
                )
                status_code = response.status_code
            self.sim.callbacks.append(
                {
                    "id": task.id,
                    "state": payload["state"],
                    "url": url,
                    "attempt": attempt,
                    "http_status": status_code,
                }
            )
            if 200 <= status_code < 300:
                return
            if attempt < attempts:
                await asyncio.sleep(self.sim.callback_retry_s)
