"""The seed's surface: ``/v1/video/generations`` exactly as new-api documents it.

``GET /v1/video/generations/{task_id}`` is the hot path: a bearer check against the token cache,
a task from the service's cache, and a small JSON body; no framework dependency machinery.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reelgate.api.bodies import RenderCache
from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.hotpath import Answer
from reelgate.api.media import MediaLinks
from reelgate.core import canonical
from reelgate.core.errors import Conflict, InvalidRequest, NotFound, ReelgateError
from reelgate.core.lifecycle import Status, Task
from reelgate.core.media import VARIANTS
from reelgate.core.request import parse_seed_body
from reelgate.service import VideoService

# Longest long-poll a status GET may ask for (s).
MAX_WAIT_SECONDS = 60
MAX_POLL_HINT = 30.0
DEFAULT_LIST_LIMIT = 20
USAGE_DEFAULT_DAYS = 30
MAX_LIST_LIMIT = 100


def bearer(request: Request) -> str | None:
    return bearer_value(request.headers.get("authorization"))


def bearer_value(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: no bearer token)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def task_data(
    task: Task,
    links: MediaLinks,
    epoch: int | None = None,
    estimate: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The seed's ``data`` object, plus reelgate's extra fields (never renamed or removed).

    ``estimate`` is (estimated_progress 0-100, eta_seconds) from the model's history; the seed's
    own ``progress`` strings stay as documented."""
    if estimate is None:
        estimate = (100, 0) if task.status.terminal else (0, 0)
    success = task.status is Status.SUCCESS
    upstream_url = links.url(task.result_url, epoch) if success else ""
    # result_url offers reelgate's durable copy once it is stored; fail_reason keeps the URL the
    # seed documents (the upstream's) unless the operator asks for the durable one there too.
    result_url = links.url(task.video_ref, epoch) if success and task.video_ref else upstream_url
    frame = task.last_frame_ref or task.last_frame_url
    if not success:
        fail_reason = task.fail_reason
    elif links.durable_fail_reason:
        fail_reason = result_url
    else:
        fail_reason = upstream_url
    return {
        "task_id": task.id,
        "action": "generate",
        "status": task.status.value,
        "progress": task.progress,
        "fail_reason": fail_reason,
        "submit_time": task.submit_time,
        "start_time": task.start_time,
        "finish_time": task.finish_time,
        "model": task.model,
        "result_url": result_url,
        "last_frame_url": links.url(frame, epoch) if success and frame else "",
        "error": (
            {"code": task.error_code, "message": task.error_message}
            if task.status is Status.FAILURE
            else None
        ),
        "estimated_progress": estimate[0],
        "eta_seconds": estimate[1],
    }


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (1 to 255 printable ASCII characters), if sent; one that
    cannot be honoured is refused (400), never ignored."""
    return canonical.token(request.headers.get("idempotency-key"), "Idempotency-Key")


def wait_seconds(request: Request) -> float | None:
    """``?wait=N`` or ``Prefer: wait=N``: how long a status GET may wait for a change (≤ 60 s)."""
    raw = request.query_params.get("wait")
    param = "wait"
    if raw is None:
        for part in request.headers.get("prefer", "").split(","):
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "wait":
                raw, param = value.strip(), "Prefer"
    if raw is None:
        return None
    try:
        return canonical.number(raw, param, low=0, high=MAX_WAIT_SECONDS)
    except InvalidRequest:
        raise InvalidRequest(
            f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}",
            code="invalid_parameter",
            param=param,
        ) from None


def seen_version(etag: str | None) -> int | None:
    """The task version a client's ``If-None-Match`` names (None when it names none of ours)."""
    if not etag:
        return None
    version, _, _ = etag.strip().removeprefix("W/").strip('"').partition(".")
    return canonical.digits(version)


def poll_hint(remaining: float) -> float:
    """When to look again: half the expected remaining time, between 1 and 30 seconds."""
    return min(MAX_POLL_HINT, max(1.0, remaining / 2))


async def usage_response(service: VideoService, request: Request, owner_id: str | None) -> Response:
    """The usage report for ``from``/``to``/``group_by`` (one token's, or every token's)."""
    q = request.query_params
    now = int(service.clock())
    until = _unix(q.get("to"), "to", now + 1)
    since = _unix(q.get("from"), "from", until - USAGE_DEFAULT_DAYS * 86400)
    group_by = q.get("group_by", "model")
    if group_by not in ("model", "day", "token"):
        raise InvalidRequest(
            "group_by must be model, day or token", code="invalid_parameter", param="group_by"
        )
    if since >= until:
        raise InvalidRequest("'from' must be before 'to'", code="invalid_parameter", param="from")
    rows = await service.store.usage(owner_id, since, until, group_by)
    body = {
        "code": "success",
        "data": rows,
        "from": since,
        "to": until,
        "group_by": group_by,
        "currency": service.currency,
    }
    return Response(json.dumps(body).encode(), media_type="application/json")


MAX_UNIX = 253_402_300_799  # 9999-12-31: a time the database's integers hold


def _unix(raw: str | None, param: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    found = canonical.digits(raw)
    if found is None or found > MAX_UNIX:
        raise InvalidRequest(
            f"'{param}' must be Unix seconds (0 to {MAX_UNIX})",
            code="invalid_parameter",
            param=param,
        )
    return found


def list_limit(raw: str | None) -> int:
    return canonical.query_int(raw, "limit", low=1, high=MAX_LIST_LIMIT, default=DEFAULT_LIST_LIMIT)


def list_status(raw: str | None) -> Status | None:
    if not raw:
        return None
    try:
        return Status(raw)
    except ValueError:
        raise InvalidRequest(
            "status must be one of queued, in_progress, success, failure",
            code="invalid_parameter",
            param="status",
        ) from None


_StatusAnswer = tuple[str, list[tuple[str, str]], list[tuple[str, str]], bytes]


class SeedSurface:
    def __init__(
        self, service: VideoService, links: MediaLinks, max_body: int, cache_size: int = 100_000
    ) -> None:
        self.service = service
        self.links = links
        self.max_body = max_body
        # Rendered bodies, reused while the task value, the estimate and link epoch are unchanged.
        self._bodies = RenderCache[bytes](cache_size)
        # Whole status answers: (ETag, headers of a 304, headers of a 200, body).
        self._answers = RenderCache[_StatusAnswer](cache_size)

    def data(self, task: Task) -> dict[str, Any]:
        """The ``data`` object of a task as every route renders it (estimates included)."""
        return task_data(task, self.links, self.links.epoch(), self.service.estimate(task))

    def render(self, task: Task, epoch: int | None = None) -> bytes:
        """The status GET's body (``epoch``: the media links' expiry, now if not given)."""
        epoch = self.links.epoch() if epoch is None else epoch
        inputs = (epoch, self.service.estimate(task))
        body = self._bodies.get(task, inputs)
        if body is None:
            data = task_data(task, self.links, *inputs)
            body = self._bodies.put(
                task, inputs, json.dumps({"code": "success", "data": data}).encode()
            )
        return body

    def etag(self, task: Task, epoch: int | None = None) -> str:
        """Changes with the task: a new version, or fresh links on a success. Weak: the estimates
        in the body move with time without making it a different answer."""
        if task.status is not Status.SUCCESS:
            return f'W/"{task.version}.0"'
        return f'W/"{task.version}.{self.links.epoch() if epoch is None else epoch}"'

    async def get(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            task_id = request.path_params["task_id"]
            wait = None
            if request.scope["query_string"] or "prefer" in request.headers:
                wait = wait_seconds(request)  # checked before the look-up: a bad ask is a 400
            task = await self.service.get(owner, task_id)
            seen = request.headers.get("if-none-match")
            if wait and not task.status.terminal:
                task = await self.service.wait_status(owner, task_id, seen_version(seen), wait)
            # (Refreshes the per-model durations the estimate and the poll hint come from.)
            await self.service.expected_remaining(task)
        except ReelgateError as exc:
            return error_response(exc)
        status, headers, body = self._status_answer(task, seen)
        return Response(body, status_code=status, headers=dict(headers))

    def hot_get(
        self, authorization: str | None, if_none_match: str | None, task_id: str
    ) -> Answer | None:
        """The plain status GET (no long-poll) for ``api.hotpath``, when the token and the task
        are in the service's caches. None leaves the request to ``get`` above (errors and
        database reads included): both answer a request the same way."""
        owner = self.service.cached_token(bearer_value(authorization))
        if owner is None:
            return None
        task = self.service.cached_task(owner, task_id)
        if task is None:
            return None
        if not task.status.terminal:
            self.service.refresh_durations_soon()
        return self._status_answer(task, if_none_match)

    async def hot_wait(
        self, authorization: str | None, if_none_match: str | None, task_id: str, wait: float
    ) -> Answer | None:
        """The long-poll for ``api.hotpath``, as ``get`` answers it, when the token and the task
        are cached; None (before any waiting) leaves the request to ``get``."""
        owner = self.service.cached_token(bearer_value(authorization))
        task = self.service.cached_task(owner, task_id) if owner is not None else None
        if owner is None or task is None:
            return None
        try:
            if wait and not task.status.terminal:
                task = await self.service.wait_status(
                    owner, task_id, seen_version(if_none_match), wait
                )
        except ReelgateError as exc:
            error = error_response(exc)
            headers = [(k, v) for k, v in error.headers.items() if k != "content-length"]
            return error.status_code, headers, bytes(error.body)
        if not task.status.terminal:
            self.service.refresh_durations_soon()
        return self._status_answer(task, if_none_match)

    def _status_answer(self, task: Task, seen: str | None) -> Answer:
        """200 with the task, or 304 when ``seen`` is its ETag. Built once per task value, link
        epoch and estimate (an unfinished task's poll hint comes from its estimate)."""
        epoch = self.links.epoch()
        estimate = self.service.estimate(task)
        answer = self._answers.get(task, (epoch, estimate))
        if answer is None:
            etag = self.etag(task, epoch)
            headers = [("etag", etag)]
            if not task.status.terminal:
                hint = poll_hint(estimate[1])
                headers.append(("retry-after", str(math.ceil(hint))))
                headers.append(("openai-poll-after-ms", str(int(hint * 1000))))
            full = [*headers, ("content-type", "application/json")]
            answer = (etag, headers, full, self.render(task, epoch))
            self._answers.put(task, (epoch, estimate), answer)
        etag, not_modified, full, body = answer
        if seen is not None and seen == etag:
            return 304, not_modified, b""
        return 200, full, body

    async def create(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            key = idempotency_key(request)
            fields = await read_object(request, self.max_body)
            task = await self.service.create(owner, parse_seed_body(fields), idempotency_key=key)
        except ReelgateError as exc:
            return error_response(exc)
        body = {
            "id": task.id,
            "task_id": task.id,
            "object": "video",
            "model": task.model,
            "status": task.status.value,
            "progress": 0,
            "created_at": task.submit_time,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def content(self, request: Request) -> Response:
        """The task's file: reelgate's copy (or the sandbox's render), with Range support."""
        try:
            owner = await self.service.authenticate(bearer(request))
            task = await self.service.get(owner, request.path_params["task_id"])
            variant = request.query_params.get("variant", "video")
            if variant not in VARIANTS:
                raise InvalidRequest(
                    "variant must be video or last_frame", code="invalid_parameter", param="variant"
                )
            if task.status is not Status.SUCCESS:
                raise Conflict(
                    f"the task is {task.status.value}: it has no content",
                    code="content_not_ready" if not task.status.terminal else "no_content",
                    retry_after=5.0 if not task.status.terminal else None,
                )
            if variant == "video":
                ref = task.video_ref or task.result_url
            else:
                ref = task.last_frame_ref or task.last_frame_url
            if not ref:
                raise NotFound("this task has no last frame", code="no_content")
            found = self.links.locate(ref)
            if found is None:
                # Not kept here (being copied, copy failed or expired, mirroring off): the
                # upstream's URL.
                return RedirectResponse(ref, status_code=307)
            return await self.links.send(*found, request)
        except ReelgateError as exc:
            return error_response(exc)

    async def cancel(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            task = await self.service.cancel(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return error_response(exc)
        return Response(self.render(task), media_type="application/json")

    async def list(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            q = request.query_params
            unknown = sorted(set(q) - {"status", "model", "limit", "after"})
            if unknown:
                raise InvalidRequest(
                    f"unknown query parameter '{unknown[0]}'",
                    code="unsupported_parameter",
                    param=unknown[0],
                )
            tasks, more = await self.service.list(
                owner,
                limit=list_limit(q.get("limit")),
                status=list_status(q.get("status")),
                model=q.get("model") or None,
                after=q.get("after") or None,
            )
        except ReelgateError as exc:
            return error_response(exc)
        epoch = self.links.epoch()
        body = {
            "code": "success",
            "data": [task_data(t, self.links, epoch, self.service.estimate(t)) for t in tasks],
            "has_more": more,
            "next_after": tasks[-1].id if more else None,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def usage(self, request: Request) -> Response:
        """``GET /v1/usage?from=&to=&group_by=model|day|token``: the token's own tasks."""
        try:
            owner = await self.service.authenticate(bearer(request))
            return await usage_response(self.service, request, owner.id)
        except ReelgateError as exc:
            return error_response(exc)

    async def models(self, request: Request) -> Response:
        try:
            await self.service.authenticate(bearer(request))
        except ReelgateError as exc:
            return error_response(exc)
        registry, now = self.service.registry, self.service.clock()
        data = [registry.describe(entry, now) for entry in registry.models()]
        return Response(
            json.dumps({"object": "list", "data": data}).encode(), media_type="application/json"
        )
