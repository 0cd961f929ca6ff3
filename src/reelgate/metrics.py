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
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

from reelgate.core.errors import ReelgateError

log = logging.getLogger("reelgate.metrics")

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STALENESS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)


class RouteStats:
    """One route template and method: answers by status, and a latency histogram."""

    __slots__ = ("answers", "bounds", "slots", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.answers: dict[int, int] = {}
        # A count per bucket; the last one counts what is above every bound.
        self.slots = [0] * (len(bounds) + 1)
        self.total = 0.0

    def timed(self, seconds: float) -> None:
        self.slots[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def answered(self, status: int) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1


class HttpStats(Collector):
    """HTTP requests by route template, method and status, and their latency, counted in plain
    integers: prometheus-client's children take a lock per increment, which profiling showed
    on the status GET. Requests are counted on the event loop's thread; a scrape reads a copy.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY) -> None:
        self._bounds = buckets
        self._labels = [floatToGoString(b) for b in buckets] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._routes: dict[tuple[str, str], RouteStats] = {}

    def route(self, route: str, method: str) -> RouteStats:
        """The counters of one route template and method (kept: callers may hold them)."""
        stats = self._routes.get((route, method))
        if stats is None:
            stats = self._routes[(route, method)] = RouteStats(self._bounds)
        return stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "reelgate_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "reelgate_http_request_duration_seconds",
            "Time to answer an HTTP request (streams: time to the first byte)",
            labels=["route", "method"],
        )
        for (route, method), stats in list(self._routes.items()):
            for status, answered in list(stats.answers.items()):
                requests.add_metric([route, method, str(status)], answered)
            counts = list(stats.slots)  # a copy: requests go on while this is read
            buckets: list[tuple[str, float]] = []
            seen = 0
            for label, count in zip(self._labels, counts, strict=True):
                seen += count
                buckets.append((label, seen))
            latency.add_metric([route, method], buckets, sum_value=stats.total)
        yield requests
        yield latency


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # Bumped on every request (the status GET's hot path): plain counters, no locks.
        self.http = HttpStats()
        r.register(self.http)
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
            "Tasks waiting in reelgate's queue for a channel",
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
        self.task_reads = Counter(
            "reelgate_task_reads",
            "Task rows this process read from the database: for a cache miss (cache), a fresh "
            "copy (refresh) or a waited-on task's watcher (watch)",
            ["reason"],
            registry=r,
        )
        self.mirror_bytes = Counter(
            "reelgate_media_mirror_bytes", "Bytes copied into reelgate's storage", registry=r
        )
        self.mirror_failures = Counter(
            "reelgate_media_mirror_failures", "Failed copy attempts of results", registry=r
        )
        # The engine's fault isolation (engine/supervisor.py), by loop: tracking, admission,
        # sweeper, channels, webhooks, mirror, callbacks, heartbeat.
        self.engine_faults = Counter(
            "reelgate_engine_faults",
            "Units (a task's submit or look, a delivery, a copy) that raised and were retried "
            "or ended with internal_error, by loop",
            ["loop"],
            registry=r,
        )
        self.round_failures = Counter(
            "reelgate_engine_round_failures",
            "Rounds of an engine loop that failed (the database away, say) and were retried "
            "after a back-off, by loop",
            ["loop"],
            registry=r,
        )
        self.loop_restarts = Counter(
            "reelgate_engine_loop_restarts",
            "Engine loops that stopped on an exception and were started again, by loop",
            ["loop"],
            registry=r,
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
