"""Replicate's predictions API (``api.replicate.com/v1``): the upstream adapter.

A task is a prediction of an official model (``POST /v1/models/{owner}/{name}/predictions``)
or of a pinned version (``POST /v1/predictions``), created without ``Prefer: wait`` (the
answer is read as it comes; nothing waits on it) and with ``Cancel-After`` set from the task's
deadline, so Replicate itself stops work nobody will wait for (``aborted`` before it started).
Webhooks ask for the ``completed`` event only and are verified as Standard Webhooks with the
account's secret, fetched once and again when a signature does not verify. Outputs are deleted
an hour after the end; reelgate's durable copy is made as soon as the success is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
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
from reelgate.providers.http import Answer, UpstreamHttp, retry_after
from reelgate.providers.replicate import models, webhooks

log = logging.getLogger("reelgate.providers.replicate")

API_URL = "https://api.replicate.com"
# Reconciling a create: predictions listed from a little before the attempt (clock skew).
CLOCK_SKEW_S = 300.0
RECONCILE_MAX_PAGES = 20
_STATES = {
    "starting": UpstreamState.QUEUED,
    "processing": UpstreamState.RUNNING,
    "succeeded": UpstreamState.SUCCEEDED,
    "failed": UpstreamState.FAILED,
    "canceled": UpstreamState.CANCELLED,
    # Its Cancel-After deadline passed before it started: it waited too long.
    "aborted": UpstreamState.EXPIRED,
}
# Replicate's code for an input or output its safety checks flagged.
_FLAGGED = ("(E005)", "flagged as sensitive", "NSFW")


def _problem(payload: Any) -> str:
    if not isinstance(payload, dict):
        return "no detail"
    text = payload.get("detail") or payload.get("title") or ""
    return str(text)[:300] or "no detail"


def error_of(answer: Answer) -> ReelgateError:
    """A Replicate error answer (RFC 7807 problem details) in reelgate's terms."""
    status = answer.status
    text = _problem(answer.payload)
    detail = f"Replicate {status}: {text}"
    if status == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if status in (402, 403):
        return UpstreamError(detail, code="upstream_account_error")
    if status == 404:
        return UpstreamError(detail, code="upstream_model_unavailable")
    if status in (400, 422):
        flagged = any(f in text for f in _FLAGGED)
        return InvalidRequest(detail, code="content_moderation" if flagged else "invalid_parameter")
    if status == 429:
        return UpstreamUnavailable(
            detail,
            code="upstream_rate_limited",
            retry_after=retry_after(answer.headers.get("retry-after")),
        )
    if status >= 500 or answer.payload is None:
        return UpstreamUnavailable(detail, code="upstream_unavailable")
    return UpstreamError(detail, code="upstream_error")


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def observe(prediction: Mapping[str, Any]) -> Observation | None:
    """A prediction as an Observation; None for a status this adapter does not know."""
    raw = prediction.get("status")
    state = _STATES.get(str(raw))
    if state is None:
        return None
    extra: dict[str, Any] = {}
    finished = _epoch(prediction.get("completed_at"))
    if finished is not None:
        extra["updated_at"] = finished
    error = str(prediction.get("error") or "")[:300]
    if state is UpstreamState.FAILED:
        code = "content_moderation" if any(f in error for f in _FLAGGED) else "upstream_failed"
        return Observation(
            state, error_code=code, error_message=f"Replicate: {error or 'failed'}", extra=extra
        )
    if state is UpstreamState.EXPIRED:
        message = "Replicate aborted the prediction: its deadline passed before it started"
        return Observation(state, error_code="expired", error_message=message, extra=extra)
    if state is not UpstreamState.SUCCEEDED:
        return Observation(state, extra=extra)
    output = prediction.get("output")
    url = output[0] if isinstance(output, list) and output else output
    if not isinstance(url, str) or not url:
        removed = bool(prediction.get("data_removed"))
        return Observation(
            UpstreamState.FAILED,
            error_code="expired" if removed else "upstream_failed",
            error_message="Replicate deleted the output before it could be copied"
            if removed
            else "Replicate's prediction succeeded without an output",
            extra=extra,
        )
    return Observation(state, video_url=url, extra=extra)


def cancel_after(deadline_at: float, now: float) -> str | None:
    """``Cancel-After`` for a deadline (whole seconds), or None without one."""
    left = int(deadline_at - now)
    return f"{left}s" if deadline_at and left >= 1 else None


class ReplicateProvider:
    name = "replicate"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = API_URL,
        versions: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        channel: str = "replicate",
        caps: AdmissionCaps | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.caps = caps or AdmissionCaps()
        self._clock = clock
        self._versions = dict(versions or {})
        self._http = UpstreamHttp(
            "replicate",
            base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout_s=timeout_s,
            transport=transport,
        )
        self._secret: bytes | None = None
        self._secret_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._models = models.catalogue()

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def _call(self, method: str, path: str, *, endpoint: str, **kwargs: Any) -> Answer:
        answer = await self._http.call(method, path, endpoint=endpoint, **kwargs)
        if not answer.ok and answer.status != 404:
            raise error_of(answer)
        return answer

    def _target(self, request: NormalizedRequest) -> tuple[str, dict[str, Any]]:
        """Where a prediction of ``request`` is created, and its body without the webhook."""
        body: dict[str, Any] = {"input": models.prediction_input(request)}
        version = self._versions.get(request.model)
        if version:
            return "/v1/predictions", {"version": version, **body}
        return f"/v1/models/{models.BY_NAME[request.model].ref}/predictions", body

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        path, body = self._target(request)
        if callback_url:
            body |= {"webhook": callback_url, "webhook_events_filter": ["completed"]}
            if self._secret is None:
                await self._refresh_secret()
        headers = {}
        if deadline := cancel_after(request.deadline_at, self._clock()):
            headers["Cancel-After"] = deadline
        answer = await self._call("POST", path, endpoint="create", json=body, headers=headers)
        if answer.status == 404:
            raise error_of(answer)
        prediction_id = answer.payload.get("id") if isinstance(answer.payload, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise UpstreamError(
                "Replicate accepted the prediction without an id", code="upstream_bad_response"
            )
        return prediction_id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        """The prediction an earlier attempt created: the account's predictions since the
        attempt (less a margin for clock skew) with this model and exactly this input. Several
        (the same input sent twice at once) cannot be told apart: ``submission_uncertain``."""
        path, body = self._target(request)
        after = datetime.fromtimestamp(since - CLOCK_SKEW_S).astimezone().isoformat()
        params: dict[str, str] | None = {"created_after": after}
        url, found = "/v1/predictions", []
        for _ in range(RECONCILE_MAX_PAGES):
            page = await self._call("GET", url, endpoint="list", params=params)
            payload = page.payload if isinstance(page.payload, dict) else {}
            for item in payload.get("results") or []:
                if isinstance(item, dict) and self._made_by(item, body, path) and item.get("id"):
                    found.append(str(item["id"]))
            following = payload.get("next")
            if not isinstance(following, str) or not following:
                break
            # Only the path and query: the token goes to Replicate's own host, never elsewhere.
            parts = urlsplit(following)
            url, params = parts.path + (f"?{parts.query}" if parts.query else ""), None
        if len(found) > 1:
            raise UpstreamError(
                f"{len(found)} Replicate predictions have this input; cannot tell which one "
                "this task created",
                code="submission_uncertain",
            )
        return found[0] if found else None

    def _made_by(self, item: Mapping[str, Any], body: Mapping[str, Any], path: str) -> bool:
        if item.get("input") != body["input"] or item.get("source", "api") != "api":
            return False
        version = body.get("version")
        if version:
            return str(version).rpartition(":")[2] == item.get("version")
        return path == f"/v1/models/{item.get('model')}/predictions"

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        found: dict[str, Observation | None] = {}
        for upstream_id in dict.fromkeys(upstream_ids):
            if not upstream_id or "/" in upstream_id:
                continue
            answer = await self._call("GET", f"/v1/predictions/{upstream_id}", endpoint="get")
            if answer.status == 404 or not isinstance(answer.payload, dict):
                continue
            seen = observe(answer.payload)
            if seen is None:
                log.warning(
                    "Replicate reported unknown status for %s; will look again", upstream_id
                )
            found[upstream_id] = seen
        return found

    async def cancel(self, upstream_id: str) -> None:
        if not upstream_id or "/" in upstream_id:
            raise Conflict("Replicate knows no such prediction", code="not_cancellable")
        answer = await self._call(
            "POST", f"/v1/predictions/{upstream_id}/cancel", endpoint="cancel"
        )
        status = answer.payload.get("status") if isinstance(answer.payload, dict) else None
        if answer.status == 404 or status in ("succeeded", "failed", "aborted"):
            raise Conflict(
                f"Replicate cannot cancel this prediction ({status or 'not found'})",
                code="not_cancellable",
            )

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        if not webhooks.verify(callback.headers, callback.body, self._secret, self._clock()):
            self._want_secret()  # perhaps the account's secret was rotated since it was read
            return None
        try:
            payload = json.loads(callback.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            return None
        final = payload.get("status") not in ("starting", "processing")
        return CallbackHint(payload["id"], final)

    def _want_secret(self) -> None:
        now = self._clock()
        if self._secret_at is not None and now - self._secret_at < webhooks.REFETCH_S:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        with contextlib.suppress(RuntimeError):  # no event loop: the next submit fetches it
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_secret())

    async def _refresh_secret(self) -> None:
        """Read the account's webhook secret; a failure keeps the old one (only logged: a
        callback it would verify is confirmed by a look-up anyway)."""
        self._secret_at = self._clock()
        try:
            answer = await self._call("GET", "/v1/webhooks/default/secret", endpoint="secret")
        except ReelgateError as exc:
            log.warning("cannot read Replicate's webhook secret (%s)", exc.code)
            return
        key = answer.payload.get("key") if isinstance(answer.payload, dict) else None
        secret = webhooks.secret_key(key) if isinstance(key, str) else None
        if secret is None:
            log.warning("Replicate's webhook secret answered %s without a key", answer.status)
            return
        self._secret = secret

    async def probe(self) -> None:
        answer = await self._call("GET", "/v1/account", endpoint="probe")
        if answer.status == 404:
            raise error_of(answer)

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        await self._http.close()


__all__ = ["API_URL", "ReplicateProvider", "cancel_after", "error_of", "observe"]
