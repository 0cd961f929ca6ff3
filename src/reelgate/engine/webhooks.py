"""The webhook sender: delivers the outbox, signed, with retries, from the worker process.

Deliveries are claimed with a lease (any number of workers share the outbox). Each attempt is
logged. A 2xx delivers; a 410 disables the target (the token's endpoint, or the task's own URL);
anything else — other statuses, timeouts, refused or private addresses, redirects (never
followed) — is retried on the Standard Webhooks schedule until the attempts run out. The body is
rendered once, at the first attempt, so every retry and replay sends the same bytes under the same
``webhook-id``.

A delivery whose handling raises (a bug, a task its renderer cannot show) counts as a failed
attempt (logged with its traceback, retried on the same schedule); a failing round (the
database away) backs off; the loop is supervised (``engine/supervisor.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from reelgate import logs
from reelgate.core import webhooks
from reelgate.core.errors import ReelgateError
from reelgate.core.lifecycle import Task
from reelgate.core.webhooks import Attempt, Delivery
from reelgate.engine.supervisor import (
    Pause,
    log_fault,
    pause,
    settle_all,
    supervised_rounds,
    unavailable,
)
from reelgate.metrics import METRICS
from reelgate.net import AddressGuard, Network, Resolver, guarded_client, system_resolver
from reelgate.service import VideoService
from reelgate.store.base import DeliveryOutbox

log = logging.getLogger("reelgate.webhooks")

BATCH = 50
# Twice the longest attempt: a sender killed mid-round leaves its deliveries for at most this.
LEASE_SECONDS = 30.0
TIMEOUT_S = 15.0
IDLE_S = 1.0
USER_AGENT = "reelgate-webhooks/1"


class WebhookSender:
    def __init__(
        self,
        service: VideoService,
        render: Callable[[Task], Mapping[str, Any]],
        *,
        worker_id: str,
        outbox: DeliveryOutbox | None = None,
        allow_networks: Sequence[Network] = (),
        retry_scale: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
        pause_for: Pause = pause,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.service = service
        # The sender's port: the deliveries and endpoints (default: the service's store).
        self.outbox: DeliveryOutbox = outbox if outbox is not None else service.store
        self._pause = pause_for
        self.timeout_s = timeout_s
        self.render = render
        self.worker_id = worker_id
        self.allow = allow_networks
        self.retry_scale = retry_scale
        # Every connection goes to an address the guard checked at send time (DNS may have
        # moved since create), never to a second resolution of the name.
        self._client = guarded_client(
            AddressGuard(allow_networks, resolver),
            timeout=timeout_s,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await supervised_rounds(
                "webhooks",
                self.tick,
                stop,
                due=self.service.webhooks_due,
                idle_s=IDLE_S,
                busy=BATCH,
                owner=self.worker_id,
                clock=self.service.clock,
                wait=self._pause,
            )
        finally:
            await self._client.aclose()

    async def tick(self) -> int:
        due = await self.outbox.claim_deliveries(
            self.service.clock(), BATCH, self.worker_id, LEASE_SECONDS
        )
        await settle_all(self.deliver(d) for d in due)
        return len(due)

    async def deliver(self, delivery: Delivery) -> None:
        with logs.bound(task_id=delivery.task_id, request_id=delivery.request_id):
            try:
                await self._deliver(delivery)
            except Exception as exc:
                if unavailable(exc):
                    raise  # the store is away: the round fails, the lease comes back
                await self._fault(delivery, exc)

    async def _fault(self, delivery: Delivery, exc: Exception) -> None:
        """Handling the delivery raised: a failed attempt like any other (the receiver sees
        nothing), retried on the same schedule until the attempts run out."""
        now = self.service.clock()
        attempt_no = delivery.attempts + 1
        retry = webhooks.next_attempt(attempt_no, now, self.retry_scale)
        log_fault(
            "webhooks",
            f"webhook {delivery.id}",
            exc,
            attempt_no,
            webhooks.MAX_ATTEMPTS,
            None if retry is None else retry - now,
            then=None if retry is not None else "giving up: the delivery failed",
        )
        state, next_at = ("pending", retry) if retry is not None else ("failed", now)
        await self.outbox.record_attempt(
            delivery,
            Attempt(attempt_no, now, None, "internal error in reelgate; it is logged", 0),
            state=state,
            next_attempt_at=next_at,
            payload=delivery.payload,
        )
        METRICS.webhook_deliveries.labels("retry" if state == "pending" else state).inc()

    async def _deliver(self, delivery: Delivery) -> None:
        endpoint = await self.outbox.webhook_endpoint(delivery.owner_id)
        now = self.service.clock()
        if delivery.target == "endpoint" and (endpoint is None or not endpoint.enabled):
            await self.outbox.settle_delivery(
                delivery.id, "disabled", "the endpoint was disabled or removed", now
            )
            return
        if endpoint is None:  # a task callback with no secret yet: make one
            owner_secret = webhooks.new_secret()
            endpoint = await self.outbox.ensure_webhook_endpoint(
                delivery.owner_id, owner_secret, now
            )
        payload = delivery.payload or await self._payload(delivery)
        if payload is None:
            await self.outbox.settle_delivery(delivery.id, "failed", "task is gone", now)
            return
        attempt_no = delivery.attempts + 1
        stamp = int(now)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            # The id of the request that created the task, for the receiver's logs.
            **({"x-request-id": delivery.request_id} if delivery.request_id else {}),
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhooks.signature(
                endpoint.secrets_at(now), delivery.id, stamp, payload.encode()
            ),
        }
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            # One bound for the whole attempt (a receiver trickling its answer included), well
            # inside the claim's lease: a crashed sender's deliveries come back soon.
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.post(
                    delivery.url, content=payload.encode(), headers=headers
                )
            status = response.status_code
            if response.is_redirect:
                error = "redirects are not followed"
        except ReelgateError as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except (ValueError, httpx.InvalidURL) as exc:  # a malformed URL or port
            error = str(exc)[:500]
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        took = int((time.monotonic() - started) * 1000)
        record = Attempt(attempt_no, now, status, error, took)
        if status is not None and 200 <= status < 300:
            state, next_at = "delivered", now
        elif status == 410:
            state, next_at = "disabled", now
            await self._disable(delivery, now)
        else:
            retry = webhooks.next_attempt(attempt_no, now, self.retry_scale)
            state, next_at = ("pending", retry) if retry is not None else ("failed", now)
        await self.outbox.record_attempt(
            delivery, record, state=state, next_attempt_at=next_at, payload=payload
        )
        METRICS.webhook_deliveries.labels("retry" if state == "pending" else state).inc()
        log.info(
            "webhook %s %s to %s: attempt %d → %s",
            delivery.id,
            delivery.event,
            parts_of(delivery.url),
            attempt_no,
            status or error,
        )

    async def _payload(self, delivery: Delivery) -> str | None:
        task = await self.outbox.get_task(delivery.owner_id, delivery.task_id)
        if task is None:
            return None
        return webhooks.event_body(delivery, self.render(task))

    async def _disable(self, delivery: Delivery, now: float) -> None:
        if delivery.target == "endpoint":
            await self.outbox.update_webhook_endpoint(
                delivery.owner_id,
                now,
                disabled_at=now,
                disabled_reason=f"{delivery.url} answered 410 Gone",
            )


def parts_of(url: str) -> str:
    """Scheme and host only: paths and queries of webhook URLs may carry secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"
