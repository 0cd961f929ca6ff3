"""Prometheus metrics: what the gateway is doing, in the tools operators already use.

One registry per process (``METRICS.registry``), exposed at ``GET /metrics`` by the API and, for
a worker-only process, on ``REELGATE_METRICS_PORT``. Labels are bounded: routes are templates
(never a task id), models and channels come from configuration, outcomes are stable error codes.

Counters and histograms are bumped where things happen; the gauges that describe shared state
(unfinished tasks, admission queues, channel load and state, ledger totals) are read from the
database every few seconds by ``StateGauges`` — every process sees the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from reelgate.core.errors import ReelgateError

log = logging.getLogger("reelgate.metrics")

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STALENESS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "reelgate_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "reelgate_http_request_duration_seconds",
            "Time to answer an HTTP request (streams: time to the first byte)",
            ["route", "method"],
            buckets=_LATENCY,
            registry=r,
        )
        self.task_transitions = Counter(
            "reelgate_task_transitions",
            "Task status changes written by this process",
            ["provider", "model", "status"],
            registry=r,
        )
        self.tasks = Gauge(
            "reelgate_tasks_unfinished",
            "Unfinished tasks, by provider, model and status",
            ["provider", "model", "status"],
            registry=r,
        )
        self.admission_queue = Gauge(
            "reelgate_admission_queue_depth",
            "Tasks waiting in reelgate's queue for an upstream account",
            ["provider"],
            registry=r,
        )
        self.channel_tasks = Gauge(
            "reelgate_channel_tasks",
            "Tasks on a channel: waiting (not yet accepted), queued and running upstream",
            ["channel", "state"],
            registry=r,
        )
        self.channel_state = Gauge(
            "reelgate_channel_state",
            "1 for the state a channel is in (active, cooling, disabled)",
            ["channel", "state"],
            registry=r,
        )
        self.upstream_calls = Counter(
            "reelgate_upstream_requests",
            "Calls to upstream APIs, by provider, endpoint and outcome (ok or error code)",
            ["provider", "endpoint", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "reelgate_upstream_request_duration_seconds",
            "Upstream call latency",
            ["provider", "endpoint"],
            buckets=_LATENCY,
            registry=r,
        )
        self.staleness = Histogram(
            "reelgate_task_staleness_seconds",
            "From the upstream finishing a task to reelgate showing it",
            ["provider"],
            buckets=_STALENESS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "reelgate_webhook_deliveries",
            "Webhook delivery attempts by outcome",
            ["outcome"],
            registry=r,
        )
        self.mirror_bytes = Counter(
            "reelgate_media_mirror_bytes", "Bytes copied into reelgate's storage", registry=r
        )
        self.mirror_failures = Counter(
            "reelgate_media_mirror_failures", "Failed copy attempts of results", registry=r
        )
        self.ledger = Gauge(
            "reelgate_ledger_amount",
            "Sum of ledger movements by kind, in the billing unit",
            ["kind"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` of this process on ``port`` from a thread (worker-only processes)."""
    start_http_server(port, addr=host, registry=METRICS.registry)


async def metrics_endpoint(_request: Request) -> Response:
    return Response(METRICS.render(), media_type=CONTENT_TYPE_LATEST)


class StateGauges:
    """Refreshes the gauges that describe shared state from the database."""

    def __init__(
        self,
        read: Callable[[Metrics], Awaitable[None]],
        *,
        interval: float = 10.0,
        metrics: Metrics = METRICS,
    ) -> None:
        self._read = read
        self.interval = interval
        self.metrics = metrics

    async def refresh(self) -> None:
        try:
            await self._read(self.metrics)
        except ReelgateError as exc:
            log.warning("cannot refresh metrics: %s", exc.message)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    @staticmethod
    async def stop(task: asyncio.Task[None] | None) -> None:
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
