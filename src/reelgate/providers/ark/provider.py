"""Doubao Seedance on Volcengine Ark and BytePlus ModelArk: the upstream adapter.

Translates a ``NormalizedRequest`` into Ark's create body, Ark's task objects into
``Observation``s, and Ark's errors into reelgate's error tree at this boundary. A create is
never retried here: a retried POST can make a second paid video (the engine decides).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.channels import DEFAULT_CHANNEL, AdmissionCaps
from reelgate.core.errors import (
    Conflict,
    InvalidRequest,
    ReelgateError,
    UpstreamError,
    UpstreamUnavailable,
)
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.metrics import METRICS
from reelgate.providers.ark import catalog as ark_catalog
from reelgate.providers.ark import models as ark_models

log = logging.getLogger("reelgate.providers.ark")

REGIONS = {
    "cn-beijing": "https://ark.cn-beijing.volces.com/api/v3",
    "ap-southeast": "https://ark.ap-southeast.bytepluses.com/api/v3",
}
TASKS = "/contents/generations/tasks"
LIST_PAGE = 500
# Reconciling a create: pages of the account's task list read back to the attempt's start.
RECONCILE_PAGE = 100
RECONCILE_MAX_PAGES = 20
CLOCK_SKEW_S = 300.0
# Ark queues at most 120 tasks per account; beyond that it answers 429 QuotaExceeded.
DEFAULT_CAPS = AdmissionCaps(max_queued=120)

# Options passed to Ark under the same name.
_PASS_THROUGH = (
    "resolution",
    "ratio",
    "seed",
    "camera_fixed",
    "watermark",
    "return_last_frame",
    "service_tier",
    "execution_expires_after",
    "generate_audio",
    "draft",
    "priority",
    "safety_identifier",
    "output_format",
    "frames",
)


def marker(task_id: str) -> str:
    """The ``safety_identifier`` reelgate sets (when the client set none) to find a task again."""
    return f"rg-{task_id}"


def build_body(
    request: NormalizedRequest,
    *,
    byteplus: bool,
    task_id: str | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """Ark's create body for a normalized request."""
    model = ark_catalog.BY_NAME[request.model]
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    mode = request.options.get("image_mode")
    roles = {
        "first_frame": ["first_frame"],
        "first_last_frame": ["first_frame", "last_frame"],
    }.get(str(mode), ["reference_image"] * len(request.images))
    for url, role in zip(request.images, roles, strict=False):
        content.append({"type": "image_url", "image_url": {"url": url}, "role": role})
    body: dict[str, Any] = {"model": model.byteplus if byteplus else model.name, "content": content}
    for key in _PASS_THROUGH:
        if key in request.options:
            body[key] = request.options[key]
    if "frames" not in body:
        body["duration"] = request.duration
    if request.options.get("web_search"):
        body["tools"] = [{"type": "web_search"}]
    if task_id is not None and "safety_identifier" not in body:
        body["safety_identifier"] = marker(task_id)
    if callback_url:
        body["callback_url"] = callback_url
    return body


def _error_of(status: int, payload: Any) -> ReelgateError:
    err = payload.get("error") if isinstance(payload, dict) else None
    code = str(err.get("code", "")) if isinstance(err, dict) else ""
    message = str(err.get("message", "")) if isinstance(err, dict) else ""
    param = err.get("param") if isinstance(err, dict) else None
    detail = f"Ark {code or status}: {message or 'no message'}"
    retry = None
    if "SensitiveContentDetected" in code:
        return InvalidRequest(detail, code="content_moderation", param=param)
    if status == 400 and code.startswith(("InvalidParameter", "MissingParameter")):
        return InvalidRequest(detail, code="invalid_parameter", param=param)
    if status == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if status == 403:
        return UpstreamError(detail, code="upstream_account_error")
    if status == 404:
        return UpstreamError(detail, code="upstream_model_unavailable")
    if status == 429:
        name = "upstream_quota_exceeded" if code == "QuotaExceeded" else "upstream_rate_limited"
        return UpstreamUnavailable(detail, code=name, retry_after=retry)
    if status >= 500:
        return UpstreamUnavailable(detail, code="upstream_unavailable")
    return UpstreamError(detail, code="upstream_error")


def observe(item: Mapping[str, Any]) -> Observation | None:
    """An Ark task object in reelgate's terms; None for a status we do not know."""
    raw = item.get("status")
    try:
        state = UpstreamState(str(raw))
    except ValueError:
        log.warning("Ark reported unknown status %r for %s; will look again", raw, item.get("id"))
        return None
    content = item.get("content") or {}
    error = item.get("error") or {}
    usage = (item.get("usage") or {}).get("total_tokens")
    code = ""
    message = ""
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        upstream_code = str(error.get("code") or "")
        code = "content_moderation" if "SensitiveContent" in upstream_code else "upstream_failed"
        message = f"{upstream_code}: {error.get('message') or 'task failed'}".lstrip(": ")
    return Observation(
        state,
        video_url=str(content.get("video_url") or "") if isinstance(content, dict) else "",
        last_frame_url=str(content.get("last_frame_url") or "")
        if isinstance(content, dict)
        else "",
        error_code=code,
        error_message=message,
        usage_tokens=int(usage) if isinstance(usage, int | float) else None,
        extra={"created_at": item.get("created_at"), "updated_at": item.get("updated_at")},
    )


# (method, is the collection) → endpoint label of the upstream call metrics.
_ENDPOINTS = {
    ("POST", True): "create",
    ("GET", True): "list",
    ("GET", False): "get",
    ("DELETE", False): "delete",
}


class ArkProvider:
    name = "ark"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = REGIONS["cn-beijing"],
        byteplus: bool | None = None,
        timeout_s: float = 30.0,
        channel: str = DEFAULT_CHANNEL,
        caps: AdmissionCaps = DEFAULT_CAPS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.caps = caps
        self.base_url = base_url.rstrip("/")
        self.byteplus = "byteplus" in self.base_url if byteplus is None else byteplus
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            transport=transport,
        )
        self._models = ark_models.capabilities()

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def _call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """One HTTP call; with ``missing_ok`` a 404 (unknown task) answers None."""
        endpoint = _ENDPOINTS.get((method, path == TASKS), "other")
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._exchange(method, path, missing_ok=missing_ok, **kwargs)
        except ReelgateError as exc:
            outcome = exc.code
            raise
        finally:
            METRICS.upstream_calls.labels("ark", endpoint, outcome).inc()
            METRICS.upstream_latency.labels("ark", endpoint).observe(time.perf_counter() - started)

    async def _exchange(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        try:
            # httpx's timeout bounds each read: an answer trickled out slowly would hold the
            # caller (a worker's whole round) for as long as the trickle lasts.
            async with asyncio.timeout(self._timeout_s):
                resp = await self._client.request(method, path, **kwargs)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"Ark timed out ({type(exc).__name__})", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Ark unreachable ({type(exc).__name__})") from None
        try:
            payload = resp.json() if resp.content else {}
        except ValueError:
            if resp.is_success:
                raise UpstreamUnavailable(
                    "Ark answered with malformed JSON", code="upstream_bad_response"
                ) from None
            payload = {}
        if missing_ok and resp.status_code == 404:
            return None
        if not resp.is_success:
            error = _error_of(resp.status_code, payload)
            if resp.status_code == 429:
                error.retry_after = _retry_after(resp.headers.get("retry-after"))
            raise error
        return payload

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        body = build_body(
            request, byteplus=self.byteplus, task_id=task_id, callback_url=callback_url
        )
        sent_at = time.time()
        try:
            payload = await self._call("POST", TASKS, json=body)
        except UpstreamError as exc:
            if exc.code not in (
                "upstream_timeout",
                "upstream_unavailable",
                "upstream_bad_response",
            ):
                raise
            # The create may have reached Ark before the answer was lost: look before resending.
            try:
                found = await self._find_created(body, sent_at)
            except ReelgateError:
                found = None  # cannot tell now; the engine reconciles before its next attempt
            if found is None:
                raise
            log.warning("create for %s was answered by %s after a lost reply", task_id, found)
            return found
        upstream_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(upstream_id, str) or not upstream_id:
            raise UpstreamError("Ark accepted the task without an id", code="upstream_bad_response")
        return upstream_id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        return await self._find_created(
            build_body(request, byteplus=self.byteplus, task_id=task_id), since
        )

    async def _find_created(self, body: Mapping[str, Any], since: float) -> str | None:
        """The id of a task ``body`` created at or after ``since``, found by safety_identifier.

        Ark lists an account's tasks newest first; pages are read back to ``since`` (less a margin
        for clock skew). With reelgate's own marker the match is certain. With a client's own
        identifier several tasks may share it: one candidate is taken, several raise
        ``submission_uncertain`` rather than guess (a wrong guess would hand over another task's
        video).
        """
        wanted = body.get("safety_identifier")
        if not isinstance(wanted, str) or not wanted:
            return None
        candidates: list[str] = []
        for page in range(1, RECONCILE_MAX_PAGES + 1):
            payload = await self._call(
                "GET",
                TASKS,
                params=[
                    ("page_num", page),
                    ("page_size", RECONCILE_PAGE),
                    ("filter.model", body["model"]),
                ],
            )
            items = payload.get("items") if isinstance(payload, dict) else None
            items = [i for i in items or [] if isinstance(i, dict)]
            oldest = float("inf")
            for item in items:
                created = item.get("created_at")
                if isinstance(created, int | float):
                    oldest = min(oldest, float(created))
                    if created < since - CLOCK_SKEW_S:
                        continue
                if item.get("safety_identifier") == wanted and item.get("id"):
                    candidates.append(str(item["id"]))
            if len(items) < RECONCILE_PAGE or oldest < since - CLOCK_SKEW_S:
                break
        if len(candidates) > 1 and not wanted.startswith("rg-task_"):
            raise UpstreamError(
                f"{len(candidates)} Ark tasks carry this safety_identifier; cannot tell which one "
                "this task created",
                code="submission_uncertain",
            )
        return candidates[0] if candidates else None

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        found: dict[str, Observation | None] = {}
        ids = list(dict.fromkeys(upstream_ids))
        if len(ids) > 1:
            for start in range(0, len(ids), LIST_PAGE):
                chunk = ids[start : start + LIST_PAGE]
                params: list[tuple[str, str | int]] = [
                    ("page_num", 1),
                    ("page_size", LIST_PAGE),
                    *(("filter.task_ids", i) for i in chunk),
                ]
                payload = await self._call("GET", TASKS, params=params)
                for item in payload.get("items") or [] if isinstance(payload, dict) else []:
                    if isinstance(item, dict) and item.get("id") in chunk:
                        found[str(item["id"])] = observe(item)
        for upstream_id in ids:
            if upstream_id in found:
                continue
            # The list may not return every id (7-day window, paging); ask for the rest singly.
            item = await self._call("GET", f"{TASKS}/{upstream_id}", missing_ok=True)
            if isinstance(item, dict):
                found[upstream_id] = observe(item)
        return found

    async def cancel(self, upstream_id: str) -> None:
        try:
            await self._call("DELETE", f"{TASKS}/{upstream_id}")
        except (InvalidRequest, UpstreamError) as exc:
            if isinstance(exc, UpstreamUnavailable):
                raise
            raise Conflict(
                f"Ark refused to cancel: {exc.message}", code="not_cancellable"
            ) from None

    async def probe(self) -> None:
        await self._call("GET", TASKS, params={"page_num": 1, "page_size": 1})

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        try:
            payload = json.loads(callback.body)
        except (ValueError, RecursionError):  # anyone may post here: garbage is no hint
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            return None
        # An unknown status may well be an end: treat it as one (a look settles it).
        final = payload.get("status") not in ("queued", "running")
        return CallbackHint(payload["id"], final)

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().replace(".", "", 1).isdigit():
        return min(600.0, float(value))
    return None
