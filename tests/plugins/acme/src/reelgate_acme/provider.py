"""The Acme Video API adapter: jobs created with the caller's reference, looked up in batches of
50, cancelled while waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

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

BATCH = 50
_STATES = {
    "waiting": UpstreamState.QUEUED,
    "working": UpstreamState.RUNNING,
    "done": UpstreamState.SUCCEEDED,
    "failed": UpstreamState.FAILED,
    "blocked": UpstreamState.FAILED,
    "expired": UpstreamState.EXPIRED,
    "cancelled": UpstreamState.CANCELLED,
}


class AcmeProvider:
    name = "acme"

    def __init__(
        self,
        key: str,
        *,
        base_url: str,
        models: Sequence[ModelCapabilities],
        channel: str = "acme",
        caps: AdmissionCaps | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.channel = channel
        self.caps = caps or AdmissionCaps()
        self._models = list(models)
        self._ids = {m.name: m.upstream_id for m in models}
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Key {key}"},
            timeout=httpx.Timeout(timeout_s),
        )

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                resp = await self._client.request(method, path, **kwargs)
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamUnavailable("Acme timed out", code="upstream_timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Acme unreachable ({type(exc).__name__})") from None
        try:
            payload = resp.json() if resp.content else {}
        except ValueError:
            payload = None
        if resp.status_code in (404, 409):
            return resp.status_code, payload
        if not resp.is_success or not isinstance(payload, dict):
            raise _error(resp, payload)
        return resp.status_code, payload

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        body: dict[str, Any] = {
            "model": self._ids.get(request.model, request.model),
            "prompt": request.prompt,
            "duration": request.duration,
            "width": request.width,
            "height": request.height,
            "image_urls": list(request.images),
            "reference": task_id,
        }
        if "seed" in request.options:
            body["seed"] = request.options["seed"]
        try:
            _, payload = await self._call("POST", "/v1/jobs", json=body)
        except UpstreamUnavailable:
            found = None
            with contextlib.suppress(ReelgateError):  # the job may exist: its reference tells
                found = await self.reconcile(task_id, request, 0.0)
            if found is None:
                raise
            return found
        job_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UpstreamUnavailable(
                "Acme answered without a job id", code="upstream_bad_response"
            )
        return job_id

    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        _, payload = await self._call("GET", "/v1/jobs", params={"reference": task_id})
        jobs = [j for j in payload.get("jobs") or [] if isinstance(j, dict)]
        return str(jobs[0]["id"]) if jobs and jobs[0].get("id") else None

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        ids = list(dict.fromkeys(upstream_ids))
        found: dict[str, Observation | None] = {}
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            _, payload = await self._call("GET", "/v1/jobs", params={"ids": ",".join(chunk)})
            for job in payload.get("jobs") or []:
                if isinstance(job, dict) and job.get("id") in chunk:
                    found[str(job["id"])] = _observe(job)
        return found

    async def cancel(self, upstream_id: str) -> None:
        status, _ = await self._call("DELETE", f"/v1/jobs/{upstream_id}")
        if status in (404, 409):
            raise Conflict("Acme cannot cancel this job", code="not_cancellable")

    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        return None  # Acme never calls back

    async def probe(self) -> None:
        await self._call("GET", "/v1/account")

    async def close(self) -> None:
        await self._client.aclose()


def _observe(job: Mapping[str, Any]) -> Observation | None:
    state = _STATES.get(str(job.get("state")))
    if state is None:
        return None  # a state this adapter does not know: look again later
    video = job.get("video") if isinstance(job.get("video"), dict) else {}
    error = job.get("error") if isinstance(job.get("error"), dict) else {}
    code = ""
    if job.get("state") == "blocked":
        code = "content_moderation"
    elif state is UpstreamState.FAILED:
        code = "upstream_failed"
    return Observation(
        state,
        video_url=str(video.get("url") or ""),
        error_code=code,
        error_message=str(error.get("message") or "") if code else "",
    )


def _error(resp: httpx.Response, payload: Any) -> ReelgateError:
    err = payload.get("error") if isinstance(payload, dict) else None
    kind = str(err.get("type", "")) if isinstance(err, dict) else ""
    detail = f"Acme {resp.status_code} {kind or 'error'}"
    if resp.status_code == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if resp.status_code == 422:
        return InvalidRequest(detail, code="content_moderation")
    if resp.status_code == 400:
        return InvalidRequest(detail, code="invalid_parameter")
    if resp.status_code == 429:
        retry = resp.headers.get("retry-after", "")
        return UpstreamUnavailable(
            detail,
            code="upstream_rate_limited",
            retry_after=float(retry) if retry.isdigit() else None,
        )
    if resp.status_code >= 500 or payload is None:
        return UpstreamUnavailable(
            detail, code="upstream_bad_response" if payload is None else None
        )
    return UpstreamError(detail)


__all__ = ["BATCH", "AcmeProvider"]
