"""One HTTP exchange with an upstream, for adapters that map the answer themselves: bounded in
time as a whole, counted and timed in the upstream metrics, and a transport failure translated
into reelgate's transient error at this boundary. What an answer *means* stays the adapter's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reelgate.core.errors import ReelgateError, UpstreamUnavailable
from reelgate.metrics import METRICS

# The longest Retry-After honoured (s): an upstream asking for more is asked again sooner.
MAX_RETRY_AFTER_S = 600.0


@dataclass(frozen=True)
class Answer:
    status: int
    # The JSON body (``{}`` when empty), or ``None`` when the body is not JSON.
    payload: Any
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the date form is not honoured), capped."""
    if value and value.strip().replace(".", "", 1).isdigit():
        return min(MAX_RETRY_AFTER_S, float(value))
    return None


class UpstreamHttp:
    """An ``httpx.AsyncClient`` for one channel, with the upstream's name for its metrics."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            transport=transport,
        )

    async def call(self, method: str, url: str, *, endpoint: str, **kwargs: Any) -> Answer:
        """One request; raises ``UpstreamUnavailable`` when no answer came (``upstream_timeout``
        for a timeout), and for a 2xx whose body is not JSON (``upstream_bad_response``)."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            answer = await self._exchange(method, url, **kwargs)
            if not answer.ok:
                outcome = str(answer.status)
            return answer
        except ReelgateError as exc:
            outcome = exc.code
            raise
        finally:
            METRICS.upstream_calls.labels(self.provider, endpoint, outcome).inc()
            METRICS.upstream_latency.labels(self.provider, endpoint).observe(
                time.perf_counter() - started
            )

    async def _exchange(self, method: str, url: str, **kwargs: Any) -> Answer:
        name = self.provider
        try:
            # httpx bounds each read; an answer trickled out slowly would otherwise hold the
            # caller (a worker's whole round) for as long as the trickle lasts.
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.request(method, url, **kwargs)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"{name} timed out ({type(exc).__name__})", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{name} unreachable ({type(exc).__name__})") from None
        try:
            payload = resp.json() if resp.content else {}
        except (ValueError, RecursionError):
            payload = None
        if payload is None and resp.is_success:
            raise UpstreamUnavailable(
                f"{name} answered with malformed JSON", code="upstream_bad_response"
            )
        return Answer(resp.status_code, payload, resp.headers)

    async def close(self) -> None:
        await self._client.aclose()


__all__ = ["Answer", "UpstreamHttp", "retry_after"]
