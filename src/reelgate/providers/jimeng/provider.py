"""Jimeng video on Volcengine's visual API (``CVSync2AsyncSubmitTask`` /
``CVSync2AsyncGetResult``, ``Version=2022-08-31``): the upstream adapter.

Every request is signed with Volcengine's HMAC-SHA256 scheme (``signer.py``) from the channel's
``ACCESS:SECRET``. Business answers are ``{code, message, data, request_id}`` (``10000`` is
success, whatever the HTTP status); gateway answers (a bad signature, say) are
``{ResponseMetadata: {Error: {Code, Message}}}``. A look-up needs the ``req_key`` of the task,
so the upstream id reelgate keeps is ``req_key:task_id``. There is no list (no batch look-up,
no reconcile) and no cancel. Facts and sources: ``docs/providers/jimeng.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

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
from reelgate.metrics import METRICS
from reelgate.providers.jimeng import models as jimeng_models
from reelgate.providers.jimeng import signer

log = logging.getLogger("reelgate.providers.jimeng")

REGIONS = {"cn-north-1": "https://visual.volcengineapi.com"}
REGION, SERVICE, VERSION = "cn-north-1", "cv", "2022-08-31"
SUBMIT, RESULT = "CVSync2AsyncSubmitTask", "CVSync2AsyncGetResult"
OK = 10000
# Refused content (input before, output after generation): the task's own fault.
MODERATION = frozenset({50411, 50412, 50413, 50511, 50512, 50516, 50517, 50518, 50519})
QPS, CONCURRENCY = 50429, 50430
INTERNAL = frozenset({50500, 50501})
# The moderation service's own trouble ("no retry" say the docs): neither the request's fault
# nor a passing one.
RISK_SERVICE = frozenset({50520, 50521, 50522})
STATES = {
    "in_queue": UpstreamState.QUEUED,
    "generating": UpstreamState.RUNNING,
    "done": UpstreamState.SUCCEEDED,
    "expired": UpstreamState.EXPIRED,
}
_AUTH_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKey", "MissingAuthenticationToken", "MissingSignature",
     "InvalidTimestamp"}
)  # fmt: skip


def split_secret(secret: str) -> tuple[str, str]:
    access, sep, key = secret.partition(":")
    if not sep or not access or not key:
        raise ValueError("a Volcengine key pair is ACCESS_KEY_ID:SECRET_ACCESS_KEY")
    return access, key


def upstream_id(req_key: str, task_id: str) -> str:
    return f"{req_key}:{task_id}"


class JimengProvider:
    name = "jimeng"

    def __init__(
        self,
        secret: str,
        *,
        base_url: str = REGIONS[REGION],
        timeout_s: float = 30.0,
        channel: str = "jimeng",
        caps: AdmissionCaps | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.channel = channel
        self.caps = caps or AdmissionCaps()
        self._access, self._secret = split_secret(secret)
        self._timeout_s = timeout_s
        self._clock = clock or time.time
        parts = urlsplit(base_url.rstrip("/"))
        self._host = parts.netloc
        self._path = parts.path or "/"
        self._client = httpx.AsyncClient(
            base_url=f"{parts.scheme}://{parts.netloc}",
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
        )
        self._models = jimeng_models.capabilities()

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def _call(self, action: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        endpoint = "create" if action == SUBMIT else "get"
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._exchange(action, body)
        except ReelgateError as exc:
            outcome = exc.code
            raise
        finally:
            METRICS.upstream_calls.labels("jimeng", endpoint, outcome).inc()
            METRICS.upstream_latency.labels("jimeng", endpoint).observe(
                time.perf_counter() - started
            )

    async def _exchange(self, action: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """One signed POST; (HTTP status, answer) for a business answer, raises otherwise."""
        content = json.dumps(body, separators=(",", ":")).encode()
        query: list[tuple[str, str | int | float | bool | None]] = [
            ("Action", action),
            ("Version", VERSION),
        ]
        headers = signer.sign(
            access_key=self._access,
            secret_key=self._secret,
            region=REGION,
            service=SERVICE,
            method="POST",
            host=self._host,
            path=self._path,
            query=[(k, str(v)) for k, v in query],
            body=content,
            when=self._clock(),
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await self._client.post(
                    self._path, params=query, content=content, headers=headers
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"Volcengine timed out ({type(exc).__name__})", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Volcengine unreachable ({type(exc).__name__})") from None
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if resp.status_code >= 500 or resp.is_success:
                raise UpstreamUnavailable(
                    f"Volcengine answered {resp.status_code} with no JSON object",
                    code="upstream_bad_response",
                )
            raise UpstreamError(f"Volcengine answered {resp.status_code}", code="upstream_error")
        meta = payload.get("ResponseMetadata")
        error = meta.get("Error") if isinstance(meta, dict) else None
        if isinstance(error, dict) and error.get("Code"):
            raise _gateway_error(resp.status_code, error, resp.headers.get("retry-after"))
        if not isinstance(payload.get("code"), int) or isinstance(payload.get("code"), bool):
            raise UpstreamUnavailable(
                "Volcengine answered without a code", code="upstream_bad_response"
            )
        retry = resp.headers.get("retry-after", "")
        if retry.isdigit():  # carried to the error an answer may become
            payload = {**payload, "_retry_after": min(600.0, float(retry))}
        return resp.status_code, payload

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        key = jimeng_models.req_key(request)
        body: dict[str, Any] = {
            "req_key": key,
            "prompt": request.prompt,
            "seed": int(request.options.get("seed", -1)),
            "frames": jimeng_models.FRAMES[request.duration],
        }
        if jimeng_models.REQ_KEY_RULES[key][0] and not request.images:
            body["aspect_ratio"] = request.options["ratio"]
        if request.images and request.images[0].startswith("data:"):
            body["binary_data_base64"] = [i.partition(",")[2] for i in request.images]
        elif request.images:
            body["image_urls"] = list(request.images)
        status, payload = await self._call(SUBMIT, body)
        code = payload["code"]
        if code != OK:
            raise _business_error(status, code, payload)
        data = payload.get("data")
        found = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(found, str) or not found:
            raise UpstreamUnavailable(
                "Volcengine accepted the task without a task_id", code="upstream_bad_response"
            )
        return upstream_id(key, found)

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        return None  # no list or idempotency key to find a create whose answer was lost

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        found: dict[str, Observation | None] = {}
        for uid in dict.fromkeys(upstream_ids):
            key, sep, task = uid.partition(":")
            if not sep or key not in jimeng_models.REQ_KEYS:
                continue  # not one of ours: unknown upstream
            status, payload = await self._call(RESULT, {"req_key": key, "task_id": task})
            seen = _observe(status, payload, uid)
            if seen is not _MISSING:
                found[uid] = seen  # type: ignore[assignment]
        return found

    async def cancel(self, upstream_id: str) -> None:
        raise Conflict("Jimeng offers no way to cancel a task", code="not_cancellable")

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        return None  # this API calls no one back

    async def probe(self) -> None:
        """A signed look-up of a task that does not exist: Volcengine checks the signature and
        the account first (business answers, ``not_found`` say, mean the channel works)."""
        await self._call(RESULT, {"req_key": "jimeng_t2v_v30", "task_id": "0"})

    async def close(self) -> None:
        await self._client.aclose()


_MISSING = object()


def _observe(status: int, payload: Mapping[str, Any], uid: str) -> object:
    """An observation, ``None`` (look again) or ``_MISSING`` (unknown upstream); raises for
    trouble that is the upstream's (rate limits, internal errors without a finished task)."""
    code = payload["code"]
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    raw = data.get("status") if isinstance(data, dict) else None
    message = str(payload.get("message") or "")
    if code != OK:
        if code in MODERATION:
            return Observation(
                UpstreamState.FAILED,
                error_code="content_moderation",
                error_message=f"Jimeng {code}: {message or 'refused by moderation'}",
            )
        if raw == "done":  # finished, and the outer code says how (the docs' rule)
            return Observation(
                UpstreamState.FAILED,
                error_code="upstream_failed",
                error_message=f"Jimeng {code}: {message or 'the task failed'}",
            )
        if code in (QPS, CONCURRENCY) or code in INTERNAL or status == 429 or status >= 500:
            raise _business_error(status, code, payload)
        log.warning("Jimeng answered code %s for %s; will look again", code, uid)
        return None
    if raw == "not_found":
        return _MISSING
    state = STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        log.warning("Jimeng reported unknown status %r for %s; will look again", raw, uid)
        return None
    video = str(data.get("video_url") or "") if isinstance(data, dict) else ""
    if state is UpstreamState.SUCCEEDED and not video:
        return None  # done without a URL yet: look again rather than fail it
    return Observation(state, video_url=video)


def _business_error(status: int, code: int, payload: Mapping[str, Any]) -> ReelgateError:
    detail = f"Jimeng {code}: {payload.get('message') or 'error'}"
    retry = payload.get("_retry_after")
    after = float(retry) if isinstance(retry, float) else None
    if code in MODERATION:
        return InvalidRequest(detail, code="content_moderation")
    if code == QPS or (status == 429 and code != CONCURRENCY):
        return UpstreamUnavailable(detail, code="upstream_rate_limited", retry_after=after)
    if code == CONCURRENCY:
        # The account's concurrency: wait (cool down), never fail the task.
        return UpstreamUnavailable(detail, code="upstream_quota_exceeded", retry_after=after)
    if status >= 500 or code in INTERNAL:
        return UpstreamUnavailable(detail, code="upstream_unavailable")
    if code in RISK_SERVICE:
        return UpstreamError(detail, code="upstream_error")
    return InvalidRequest(detail, code="invalid_parameter")


def _gateway_error(status: int, error: Mapping[str, Any], retry: str | None) -> ReelgateError:
    code = str(error.get("Code"))
    detail = f"Volcengine {status} {code}: {error.get('Message') or 'error'}"
    if code in _AUTH_CODES or status == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if status == 403 or code == "AccessDenied":
        return UpstreamError(detail, code="upstream_account_error")
    if status == 429:
        after = float(retry) if retry and retry.isdigit() else None
        return UpstreamUnavailable(detail, code="upstream_rate_limited", retry_after=after)
    if status >= 500:
        return UpstreamUnavailable(detail, code="upstream_unavailable")
    return UpstreamError(detail, code="upstream_error")
