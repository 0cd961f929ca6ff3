"""Webhook deliveries of a simulator: a background loop that posts what the simulator says is
due (signed by it), retrying an answer that is not a 2xx, and records every attempt.

A simulator using it implements ``due_webhooks()`` (each call hands over the deliveries that
became due since the last, marking them taken) and runs ``WebhookSender(sim).run()`` from its
``running()`` context.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

__all__ = ["Delivery", "WebhookSender", "WebhookSource", "sending"]


@dataclass(frozen=True)
class Delivery:
    task_id: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    final: bool = True


class WebhookSource(Protocol):
    webhook_attempts: int  # tries per delivery, the first included
    webhook_retry_s: float  # between tries (wall seconds)
    webhook_timeout_s: float
    deliveries: list[dict[str, Any]]  # every attempt: task_id, url, attempt, http_status

    def due_webhooks(self) -> list[Delivery]: ...

    def sign(self, delivery: Delivery) -> Mapping[str, str]:
        """The signature headers of a delivery, made at the moment of each attempt."""


@dataclass
class WebhookSender:
    source: WebhookSource
    interval_s: float = 0.05
    _jobs: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.source.webhook_timeout_s) as client:
            try:
                while True:
                    for delivery in self.source.due_webhooks():
                        job = asyncio.get_running_loop().create_task(
                            self._deliver(client, delivery)
                        )
                        self._jobs.add(job)
                        job.add_done_callback(self._jobs.discard)
                    await asyncio.sleep(self.interval_s)
            finally:
                for job in self._jobs:
                    job.cancel()

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        attempts = max(1, self.source.webhook_attempts)
        for attempt in range(1, attempts + 1):
            status = 0
            headers = {**delivery.headers, **self.source.sign(delivery)}
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.post(delivery.url, content=delivery.body, headers=headers)
                status = answer.status_code
            self.source.deliveries.append(
                {
                    "task_id": delivery.task_id,
                    "url": delivery.url,
                    "attempt": attempt,
                    "http_status": status,
                }
            )
            if 200 <= status < 300:
                return
            if attempt < attempts:
                await asyncio.sleep(self.source.webhook_retry_s)


@contextlib.asynccontextmanager
async def sending(source: WebhookSource) -> AsyncIterator[None]:
    """Deliver ``source``'s webhooks while in the block (a simulator's ``running()``)."""
    sender = asyncio.get_running_loop().create_task(WebhookSender(source).run())
    try:
        yield
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
