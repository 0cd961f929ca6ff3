"""fal's queue API (``queue.fal.run``): the upstream adapter.

A task is submitted to its endpoint (``{owner}/{app}[/{path}]``); its status and result live
under ``{owner}/{app}`` only, so reelgate's upstream id is ``{owner}/{app}/{request_id}``.
Statuses answer 202 while queued or running and 200 once ``COMPLETED``, which carries an
``error`` when the request failed. fal lists no requests, so a create whose answer was lost
cannot be found again (``Features.reconcile`` is false). Webhooks are signed with Ed25519; the
keys are fetched (with no credential) from the JWKS URL and cached for a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest
from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import (
    Conflict,
    InvalidRequest,
    ReelgateError,
    UpstreamError,
    UpstreamUnavailable,
)
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.providers.fal import models, webhooks
from reelgate.providers.http import Answer, UpstreamHttp, retry_after

log = logging.getLogger("reelgate.providers.fal")

QUEUE_URL = "https://queue.fal.run"
# New accounts run 2 requests at once, rising with credit to 40; the rest wait in reelgate.
DEFAULT_CAPS = AdmissionCaps(max_in_flight=2)
# The query parameter of the webhook address that names the task's app (fal's body has only
# the request id; reelgate's upstream id needs both).
APP_PARAM = "fal_app"
MODERATION = "content_policy_violation"
# fal's error types that mean a request never started before its start timeout (expired) or
# was withdrawn while queued.
EXPIRED_TYPES = frozenset({"request_timeout", "startup_timeout"})
CANCELLED_TYPES = frozenset({"request_cancelled", "cancelled"})
_PROBE_ID = "00000000-0000-0000-0000-000000000000"


def split_id(upstream_id: str) -> tuple[str, str] | None:
    """(app, request id) of reelgate's upstream id, or None when it is not one of ours."""
    app, _, request_id = upstream_id.rpartition("/")
    if not app or not request_id or app != models.app_of(app):
        return None
    return app, request_id


def _details(payload: Any) -> tuple[list[str], str]:
    """The error types and a safe message of a fal error body (never the echoed input)."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):
        return [], detail[:300]
    types, texts = [], []
    for item in detail if isinstance(detail, list) else []:
        if isinstance(item, dict):
            types.append(str(item.get("type") or ""))
            texts.append(str(item.get("msg") or "")[:200])
    return types, "; ".join(t for t in texts if t)


def error_of(answer: Answer) -> ReelgateError:
    """A fal error answer in reelgate's terms."""
    status, payload = answer.status, answer.payload
    types, text = _details(payload)
    kind = str(payload.get("error_type") or "") if isinstance(payload, dict) else ""
    kind = kind or answer.headers.get("x-fal-error-type", "")
    detail = f"fal {status} {kind or (types[0] if types else 'error')}: {text or 'no detail'}"
    if MODERATION in types or kind == MODERATION:
        return InvalidRequest(detail, code="content_moderation")
    if status == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if status == 403:
        return UpstreamError(detail, code="upstream_account_error")
    if status == 404:
        return UpstreamError(detail, code="upstream_model_unavailable")
    if status in (400, 422):
        return InvalidRequest(detail, code="invalid_parameter")
    if status == 429:
        return UpstreamUnavailable(
            detail,
            code="upstream_rate_limited",
            retry_after=retry_after(answer.headers.get("retry-after")),
        )
    if status == 504 or kind in EXPIRED_TYPES:
        return UpstreamUnavailable(detail, code="upstream_timeout")
    if status >= 500 or status in (408, 409) or payload is None:
        return UpstreamUnavailable(detail, code="upstream_unavailable")
    return UpstreamError(detail, code="upstream_error")


def observe(status: Mapping[str, Any], result: Mapping[str, Any] | None) -> Observation | None:
    """A status object (and, once completed, the result) as an Observation; None for a status
    this adapter does not know."""
    state = status.get("status")
    position = status.get("queue_position")
    extra = {"queue_position": position} if isinstance(position, int) else {}
    if state == "IN_QUEUE":
        return Observation(UpstreamState.QUEUED, extra=extra)
    if state == "IN_PROGRESS":
        return Observation(UpstreamState.RUNNING)
    if state != "COMPLETED":
        return None
    error, kind = status.get("error"), str(status.get("error_type") or "")
    if error:
        message = f"fal {kind or 'error'}: {str(error)[:300]}"
        if kind in EXPIRED_TYPES:
            return Observation(UpstreamState.EXPIRED, error_code="expired", error_message=message)
        if kind in CANCELLED_TYPES:
            return Observation(UpstreamState.CANCELLED, error_message=message)
        code = "content_moderation" if kind == MODERATION else "upstream_failed"
        return Observation(UpstreamState.FAILED, error_code=code, error_message=message)
    video = result.get("video") if isinstance(result, Mapping) else None
    url = video.get("url") if isinstance(video, Mapping) else None
    if not isinstance(url, str) or not url:
        return Observation(
            UpstreamState.FAILED,
            error_code="upstream_failed",
            error_message="fal completed the request without a video",
        )
    seconds = video.get("duration") if isinstance(video, Mapping) else None
    return Observation(
        UpstreamState.SUCCEEDED,
        video_url=url,
        usage_seconds=float(seconds) if isinstance(seconds, int | float) else None,
    )


class FalProvider:
    name = "fal"

    def __init__(
        self,
        key: str,
        *,
        base_url: str = QUEUE_URL,
        jwks_url: str = webhooks.JWKS_URL,
        timeout_s: float = 30.0,
        channel: str = "fal",
        caps: AdmissionCaps = DEFAULT_CAPS,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.caps = caps
        self._clock = clock
        self._http = UpstreamHttp(
            "fal",
            base_url,
            headers={"Authorization": f"Key {key}"},
            timeout_s=timeout_s,
            transport=transport,
        )
        # The JWKS host gets no credential: it is not the queue's.
        self._jwks_url = jwks_url
        self._jwks = UpstreamHttp("fal", "", headers={}, timeout_s=timeout_s)
        self._keys = webhooks.KeySet()
        self._refreshing: asyncio.Task[None] | None = None
        self._models = models.catalogue()

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def _call(self, method: str, path: str, *, endpoint: str, **kwargs: Any) -> Answer:
        answer = await self._http.call(method, "/" + path.lstrip("/"), endpoint=endpoint, **kwargs)
        if not answer.ok and answer.status != 404:
            raise error_of(answer)
        return answer

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        endpoint = models.endpoint_of(request)
        app = models.app_of(endpoint)
        params: dict[str, str] = {}
        if callback_url:
            joiner = "&" if "?" in callback_url else "?"
            params["fal_webhook"] = f"{callback_url}{joiner}{APP_PARAM}={app}"
            await self._refresh_keys()
        headers = {}
        left = request.deadline_at - self._clock()
        if request.deadline_at and left > 1:
            # fal's start timeout: a request still queued then ends instead of running late.
            headers["X-Fal-Request-Timeout"] = f"{left:.0f}"
        answer = await self._call(
            "POST",
            endpoint,
            endpoint="create",
            json=models.model_input(request),
            params=params,
            headers=headers,
        )
        if answer.status == 404:
            raise error_of(answer)
        request_id = answer.payload.get("request_id") if isinstance(answer.payload, dict) else ""
        if not isinstance(request_id, str) or not request_id or "/" in request_id:
            raise UpstreamError(
                "fal accepted the request without an id", code="upstream_bad_response"
            )
        return f"{app}/{request_id}"

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        return None  # fal lists no requests: a lost create cannot be found again

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        found: dict[str, Observation | None] = {}
        for upstream_id in dict.fromkeys(upstream_ids):
            parts = split_id(upstream_id)
            if parts is None:
                continue  # not an id of ours: unknown upstream
            app, request_id = parts
            base = f"{app}/requests/{request_id}"
            status = await self._call(
                "GET", f"{base}/status", endpoint="status", params={"logs": 0}
            )
            if status.status == 404 or not isinstance(status.payload, dict):
                continue
            result = None
            if status.payload.get("status") == "COMPLETED" and not status.payload.get("error"):
                answer = await self._call("GET", base, endpoint="result")
                if answer.status == 404:
                    continue
                result = answer.payload if isinstance(answer.payload, dict) else None
            seen = observe(status.payload, result)
            if seen is None:
                log.warning("fal reported unknown status for %s; will look again", upstream_id)
            found[upstream_id] = seen
        return found

    async def cancel(self, upstream_id: str) -> None:
        parts = split_id(upstream_id)
        if parts is None:
            raise Conflict("fal knows no such request", code="not_cancellable")
        app, request_id = parts
        base = f"{app}/requests/{request_id}"
        # fal passes a cancel of a running request to the app, which may ignore it: only a
        # request still in the queue is withdrawn for sure.
        status = await self._call("GET", f"{base}/status", endpoint="status", params={"logs": 0})
        state = status.payload.get("status") if isinstance(status.payload, dict) else None
        if status.status == 404 or state != "IN_QUEUE":
            raise Conflict(
                "fal can cancel a request only while it is queued", code="not_cancellable"
            )
        answer = await self._http.call("PUT", f"/{base}/cancel", endpoint="cancel")
        said = answer.payload.get("status") if isinstance(answer.payload, dict) else None
        if answer.ok and said in ("CANCELLATION_REQUESTED", "OK"):
            return
        if answer.status in (400, 404) or said in ("ALREADY_COMPLETED", "NOT_FOUND"):
            raise Conflict(
                f"fal refused to cancel ({said or answer.status})", code="not_cancellable"
            )
        raise error_of(answer)

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        app = _app_param(callback.url)
        if app is None:
            return None
        request_id = webhooks.verify(
            callback.headers, callback.body, self._keys.keys, self._clock()
        )
        if request_id is None:
            self._want_keys()  # perhaps signed by a key fal rotated in since the last fetch
            return None
        try:
            payload = json.loads(callback.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or payload.get("request_id") != request_id:
            return None
        # fal calls back once a request has ended (OK or ERROR); anything else is looked up.
        return CallbackHint(f"{app}/{request_id}", True)

    def _want_keys(self) -> None:
        now = self._clock()
        self._keys.wanted_at = now
        if not self._keys.due(now) or (self._refreshing and not self._refreshing.done()):
            return
        with contextlib.suppress(RuntimeError):  # no event loop: the next submit fetches them
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_keys())

    async def _refresh_keys(self) -> None:
        """Fetch fal's keys when due; a failure keeps the old ones (and is only logged: the
        callback it would verify is confirmed by a look-up anyway)."""
        now = self._clock()
        if not self._keys.due(now):
            return
        try:
            answer = await self._jwks.call("GET", self._jwks_url, endpoint="jwks")
        except ReelgateError as exc:
            log.warning("cannot fetch fal's webhook keys (%s)", exc.code)
            return
        keys = webhooks.parse_jwks(answer.payload) if answer.ok else []
        if keys:
            self._keys.replace(keys, now)
        else:
            log.warning("fal's webhook keys answered %s with no Ed25519 key", answer.status)

    async def probe(self) -> None:
        # A status call for a request that does not exist: 404 with a working key.
        await self._call("GET", f"fal-ai/bytedance/requests/{_PROBE_ID}/status", endpoint="probe")

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        await self._http.close()
        await self._jwks.close()


def _app_param(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(APP_PARAM) or []
    app = values[-1] if values else ""
    return app if app and models.app_of(app) == app else None


__all__ = ["DEFAULT_CAPS", "QUEUE_URL", "FalProvider", "error_of", "observe", "split_id"]
