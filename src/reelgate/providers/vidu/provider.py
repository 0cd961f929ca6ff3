"""Vidu (Shengshu) enterprise API ``/ent/v2``: the upstream adapter.

Creates at the endpoint of the request's mode with ``Authorization: Token <key>`` and
reelgate's marker in ``payload``; looks tasks up in batches with ``GET /ent/v2/tasks``
(``task_ids`` repeated, up to 100 a page), single ``GET /tasks/{id}/creations`` for the ones the
list leaves out; cancels with ``POST /tasks/{id}/cancel`` (queued tasks only); verifies signed
callbacks (``signature.py``) before taking one as a hint. A create is never retried here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import Conflict, ReelgateError, UpstreamUnavailable
from reelgate.core.lifecycle import Callback, CallbackHint, Observation
from reelgate.metrics import METRICS
from reelgate.providers.vidu import models as vidu_models
from reelgate.providers.vidu import signature, wire

log = logging.getLogger("reelgate.providers.vidu")

REGIONS = {"global": "https://api.vidu.com", "cn": "https://api.vidu.cn"}
TASKS = "/ent/v2/tasks"
# The list's largest page (pager.pagesz, spec §5.3): a batch look-up carries this many ids.
LIST_PAGE = 100
RECONCILE_MAX_PAGES = 20
CLOCK_SKEW_S = 300.0
# Vidu runs 5 tasks at once per organization by default and queues the rest itself (§9).
DEFAULT_CAPS = AdmissionCaps(max_in_flight=5)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ViduProvider:
    name = "vidu"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = REGIONS["global"],
        timeout_s: float = 30.0,
        channel: str = "vidu",
        caps: AdmissionCaps = DEFAULT_CAPS,
        clock: Callable[[], float] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.caps = caps
        self._secret = api_key
        self._timeout_s = timeout_s
        self._clock = clock or time.time
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Token {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            transport=transport,
        )
        self._models = vidu_models.capabilities()

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    # -- HTTP ---------------------------------------------------------------------------------
    async def _call(self, endpoint: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One request; answers (status, body) for 2xx and 404, raises reelgate's error else."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._exchange(method, path, **kwargs)
        except ReelgateError as exc:
            outcome = exc.code
            raise
        finally:
            METRICS.upstream_calls.labels("vidu", endpoint, outcome).inc()
            METRICS.upstream_latency.labels("vidu", endpoint).observe(time.perf_counter() - started)

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await self._client.request(method, path, **kwargs)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"Vidu timed out ({type(exc).__name__})", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Vidu unreachable ({type(exc).__name__})") from None
        try:
            payload = resp.json() if resp.content else {}
        except ValueError:
            if resp.is_success:
                raise UpstreamUnavailable(
                    "Vidu answered with malformed JSON", code="upstream_bad_response"
                ) from None
            payload = {}
        if resp.status_code == 404:
            return 404, payload
        if not resp.is_success:
            raise wire.error_of(
                resp.status_code, payload, _retry_after(resp.headers.get("retry-after"))
            )
        if not isinstance(payload, dict):
            raise UpstreamUnavailable(
                "Vidu answered with a body that is no object", code="upstream_bad_response"
            )
        return resp.status_code, payload

    # -- the Provider protocol ----------------------------------------------------------------
    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        body = wire.build_body(request, task_id=task_id, callback_url=callback_url)
        sent_at = self._clock()
        try:
            status, payload = await self._call("create", "POST", wire.endpoint(request), json=body)
        except UpstreamUnavailable as exc:
            if exc.code not in (
                "upstream_timeout",
                "upstream_unavailable",
                "upstream_bad_response",
            ):
                raise
            # The create may have reached Vidu before the answer was lost: look before resending.
            try:
                found = await self.reconcile(task_id, request, sent_at)
            except ReelgateError:
                found = None  # cannot tell now; the engine reconciles before its next attempt
            if found is None:
                raise
            log.warning("create for %s was answered by %s after a lost reply", task_id, found)
            return found
        upstream_id = payload.get("task_id") if status != 404 else None
        if (
            not isinstance(upstream_id, str | int)
            or isinstance(upstream_id, bool)
            or not upstream_id
        ):
            raise UpstreamUnavailable(
                "Vidu accepted the task without a task_id", code="upstream_bad_response"
            )
        return str(upstream_id)

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        """The task a create for ``task_id`` made since ``since``, found by its ``payload``."""
        wanted = wire.marker(task_id)
        params: list[tuple[str, str | int]] = [
            ("created_at.from", _iso(since - CLOCK_SKEW_S)),
            ("pager.pagesz", LIST_PAGE),
        ]
        token = ""
        for page in range(RECONCILE_MAX_PAGES):
            query = [*params, ("pager.page", page)]
            if token:
                query.append(("pager.page_token", token))
            _, payload = await self._call("list", "GET", TASKS, params=query)
            tasks = [t for t in payload.get("tasks") or [] if isinstance(t, dict)]
            for item in tasks:
                if item.get("payload") == wanted and item.get("id"):
                    return str(item["id"])
            token = str(payload.get("next_page_token") or "")
            if len(tasks) < LIST_PAGE or not token:
                return None
        return None

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        ids = list(dict.fromkeys(upstream_ids))
        found: dict[str, Observation | None] = {}
        for start in range(0, len(ids), LIST_PAGE):
            chunk = ids[start : start + LIST_PAGE]
            query: list[tuple[str, str | int]] = [("pager.pagesz", LIST_PAGE)]
            query.extend(("task_ids", i) for i in chunk)
            _, payload = await self._call("list", "GET", TASKS, params=query)
            for item in payload.get("tasks") or []:
                if isinstance(item, dict) and str(item.get("id")) in chunk:
                    found[str(item["id"])] = wire.observe(item)
        for upstream_id in ids:
            if upstream_id in found:
                continue
            # The list covers 7 days by default: older tasks are asked for one by one.
            status, item = await self._call("get", "GET", f"{TASKS}/{upstream_id}/creations")
            if status != 404 and isinstance(item, dict) and item:
                found[upstream_id] = wire.observe({"id": upstream_id, **item})
        return found

    async def cancel(self, upstream_id: str) -> None:
        try:
            status, _ = await self._call(
                "cancel", "POST", f"{TASKS}/{upstream_id}/cancel", json={"id": upstream_id}
            )
        except UpstreamUnavailable:
            raise
        except ReelgateError as exc:
            raise Conflict(
                f"Vidu refused to cancel: {exc.message}", code="not_cancellable"
            ) from None
        if status == 404:
            raise Conflict("Vidu does not know this task", code="not_cancellable")

    async def probe(self) -> None:
        await self._call("credits", "GET", "/ent/v2/credits", params={"show_detail": "false"})

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        try:
            nonce = signature.verify(self._secret, callback.url, callback.headers, self._clock())
        except Exception:  # anyone may post here: a header that breaks parsing is no hint
            return None
        if nonce is None:  # unsigned, forged or stale: nothing to go by
            return None
        try:
            payload = json.loads(callback.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict):
            return None
        upstream_id = payload.get("id")
        if isinstance(upstream_id, int) and not isinstance(upstream_id, bool):
            upstream_id = str(upstream_id)
        if not isinstance(upstream_id, str) or not upstream_id:
            return None
        return CallbackHint(upstream_id, payload.get("state") not in wire.UNFINISHED)

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().replace(".", "", 1).isdigit():
        return min(600.0, float(value))
    return None
