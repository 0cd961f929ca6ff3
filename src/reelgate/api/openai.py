"""The OpenAI-style surface: ``/v1/videos`` as the official ``openai`` SDK speaks it.

Same tasks as the seed's surface (one id on both), translated: statuses only
``queued|in_progress|completed|failed`` (the SDK's poll loop stops on anything else), integer
progress, ``openai-poll-after-ms``, and OpenAI's error body ``{"error":{...}}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from pathlib import Path
from typing import Any, assert_never

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reelgate import previews
from reelgate.api.bodies import RenderCache
from reelgate.api.body import read_object
from reelgate.api.errors import openai_error
from reelgate.api.hotpath import Answer
from reelgate.api.media import MediaLinks
from reelgate.api.seed import bearer, bearer_value, idempotency_key, poll_hint, seen_version
from reelgate.core import canonical_json
from reelgate.core.canonical import query_int
from reelgate.core.errors import Conflict, InvalidRequest, NotFound, ReelgateError
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Status, Task
from reelgate.core.request import VideoRequest, parse_prompt, parse_seed_body
from reelgate.service import VideoService

__all__ = ["OpenAiSurface", "openai_error", "parse_openai_body", "unsupported_operation"]

VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
MAX_LIMIT = 100
# Operations of the openai SDK's ``videos`` resource that no provider here can do yet: a clear
# 400 in OpenAI's shape, not a 404 or 405 that reads like a broken gateway.
_UNSUPPORTED = (
    ("POST", re.compile(r"/v1/videos/edits/?"), "editing a video"),
    ("POST", re.compile(r"/v1/videos/extensions/?"), "extending a video"),
    ("POST", re.compile(r"/v1/videos/characters/?"), "video characters"),
    ("GET", re.compile(r"/v1/videos/characters/[^/]+/?"), "video characters"),
)


def unsupported_operation(method: str, path: str) -> ReelgateError | None:
    """The error for an OpenAI videos operation reelgate does not offer (None: not one)."""
    for wanted, pattern, what in _UNSUPPORTED:
        if method == wanted and pattern.fullmatch(path):
            return InvalidRequest(
                f"{what} is not supported by this gateway: no provider here offers it yet",
                code="unsupported_operation",
            )
    return None


def openai_status(status: Status) -> str:
    match status:
        case Status.QUEUED:
            return "queued"
        case Status.IN_PROGRESS:
            return "in_progress"
        case Status.SUCCESS:
            return "completed"
        case Status.FAILURE:
            return "failed"
        case _:  # pragma: no cover - exhaustive
            assert_never(status)


def parse_openai_body(fields: dict[str, Any], default_model: str) -> VideoRequest:
    """The create body as the SDK sends it (multipart or JSON) in the seed's terms."""
    body = dict(fields)
    if "input_reference[file_id]" in body:
        raise InvalidRequest(
            "file ids are not supported: send the image as a file part or an image_url",
            code="unsupported_parameter",
            param="input_reference",
        )
    url = body.pop("input_reference[image_url]", None)
    ref = body.get("input_reference")
    if isinstance(ref, dict):
        url = ref.get("image_url")
        body.pop("input_reference")
    if url is not None:
        body["input_reference"] = url
    if not body.get("model"):
        body["model"] = default_model
    # A form spells a nested object as ``metadata[key]=value`` (as the SDK sends extra_body).
    nested = {k: body.pop(k) for k in list(body) if k.startswith("metadata[") and k.endswith("]")}
    if nested:
        metadata = body.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = canonical_json.loads(metadata, "metadata")
            except InvalidRequest:
                metadata = None
        if not isinstance(metadata, dict):
            raise InvalidRequest(
                "'metadata' must be a JSON object", code="invalid_parameter", param="metadata"
            )
        for key, value in nested.items():
            metadata[key.removeprefix("metadata[").removesuffix("]")] = _form_value(value)
        body["metadata"] = metadata
    return parse_seed_body(body)


def _form_value(value: Any) -> Any:
    """A form field's text as the JSON value it spells (``60`` → 60, ``true`` → True)."""
    if not isinstance(value, str):
        return value
    try:
        return canonical_json.loads(value)
    except InvalidRequest:
        return value


class OpenAiSurface:
    def __init__(
        self, service: VideoService, links: MediaLinks, max_body: int, default_model: str
    ) -> None:
        self.service = service
        self.links = links
        self.max_body = max_body
        self.default_model = default_model
        self._bodies = RenderCache[bytes]()

    def video(self, task: Task) -> dict[str, Any]:
        progress = self.service.estimate(task)[0]
        out: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "model": task.model,
            "status": openai_status(task.status),
            "progress": progress,
            "created_at": task.submit_time,
            "completed_at": task.finish_time or None,
            "expires_at": None,
            "prompt": str(task.request.get("prompt", "")),
            "seconds": str(task.request.get("duration", "")),
            "size": str(task.request.get("size", "")),
            "remixed_from_video_id": task.request.get("remixed_from") or None,
            "error": None,
        }
        if task.status is Status.FAILURE:
            out["error"] = {"code": task.error_code, "message": task.error_message}
        return out

    def _answer(self, task: Task) -> Response:
        status, headers, body = self._video_answer(task, None)
        return Response(body, status_code=status, headers=dict(headers))

    def _video_answer(self, task: Task, seen: int | None) -> Answer:
        """200 with the video object, or 304 when ``seen`` is its version."""
        headers = [("etag", f'W/"{task.version}.0"')]
        if seen is not None and seen == task.version:
            return 304, headers, b""
        progress, remaining = self.service.estimate(task)
        if not task.status.terminal:
            headers.append(("openai-poll-after-ms", str(int(poll_hint(remaining) * 1000))))
        headers.append(("content-type", "application/json"))
        body = self._bodies.get(task, progress)
        if body is None:
            body = self._bodies.put(task, progress, json.dumps(self.video(task)).encode())
        return 200, headers, body

    def hot_get(
        self, authorization: str | None, if_none_match: str | None, video_id: str
    ) -> Answer | None:
        """``retrieve`` for ``api.hotpath`` when the token and the task are cached (else None)."""
        owner = self.service.cached_token(bearer_value(authorization))
        task = None if owner is None else self.service.cached_task(owner, video_id)
        if task is None:
            return None
        return self._video_answer(task, seen_version(if_none_match))

    async def _owner(self, request: Request) -> ApiToken:
        return await self.service.authenticate(bearer(request))

    async def create(self, request: Request) -> Response:
        try:
            owner = await self._owner(request)
            key = idempotency_key(request)
            fields = await read_object(request, self.max_body)
            task = await self.service.create(
                owner, parse_openai_body(fields, self.default_model), idempotency_key=key
            )
        except ReelgateError as exc:
            return openai_error(exc)
        return self._answer(task)

    async def retrieve(self, request: Request) -> Response:
        try:
            owner = await self._owner(request)
            task = await self.service.get(owner, request.path_params["video_id"])
            seen = seen_version(request.headers.get("if-none-match"))
        except ReelgateError as exc:
            return openai_error(exc)
        status, headers, body = self._video_answer(task, seen)
        return Response(body, status_code=status, headers=dict(headers))

    async def list(self, request: Request) -> Response:
        try:
            owner = await self._owner(request)
            q = request.query_params
            limit = query_int(q.get("limit"), "limit", low=1, high=MAX_LIMIT, default=20)
            order = q.get("order", "desc")
            if order not in ("asc", "desc"):
                raise InvalidRequest(
                    "order must be asc or desc", code="invalid_parameter", param="order"
                )
            tasks, more = await self.service.list(
                owner,
                limit=limit,
                after=q.get("after") or None,
                oldest_first=order == "asc",
            )
        except ReelgateError as exc:
            return openai_error(exc)
        body = {
            "object": "list",
            "data": [self.video(t) for t in tasks],
            "has_more": more,
            "first_id": tasks[0].id if tasks else None,
            "last_id": tasks[-1].id if tasks else None,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def delete(self, request: Request) -> Response:
        """Delete a job: a waiting one is cancelled first (a running one cannot be: 409); then
        it is gone for its owner on every surface, and the files reelgate kept of it with it."""
        try:
            owner = await self._owner(request)
            task = await self.service.delete(owner, request.path_params["video_id"])
        except ReelgateError as exc:
            return openai_error(exc)
        body = {"id": task.id, "object": "video.deleted", "deleted": True}
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def content(self, request: Request) -> Response:
        try:
            owner = await self._owner(request)
            task = await self.service.get(owner, request.path_params["video_id"])
            variant = request.query_params.get("variant", "video")
            if variant not in VARIANTS:
                raise InvalidRequest(
                    "variant must be video, thumbnail or spritesheet",
                    code="invalid_parameter",
                    param="variant",
                )
            if task.status is not Status.SUCCESS:
                raise Conflict(
                    f"the video is {openai_status(task.status)}: it has no content yet",
                    code="content_not_ready" if not task.status.terminal else "no_content",
                )
            ref = task.video_ref or task.result_url
            found = self.links.locate(ref)
            if found is None:  # not (yet) kept here: the upstream's URL is still good
                if variant == "video":
                    return RedirectResponse(ref, status_code=307)
                raise NotFound("this video is not kept here", code="no_content")
            if variant == "video":
                return await self.links.send(*found, request)
            storage, name = found
            data = await _preview(storage.local_path(name), storage, name, variant)
        except ReelgateError as exc:
            return openai_error(exc)
        return Response(data, media_type=VARIANTS[variant])

    async def remix(self, request: Request) -> Response:
        try:
            owner = await self._owner(request)
            source = await self.service.get(owner, request.path_params["video_id"])
            key = idempotency_key(request)
            fields = await read_object(request, self.max_body)
            unknown = sorted(set(fields) - {"prompt"})
            if unknown:
                raise InvalidRequest(
                    f"unknown parameter '{unknown[0]}'; a remix takes only 'prompt'",
                    code="unsupported_parameter",
                    param=unknown[0],
                )
            task = await self.service.remix(owner, source, parse_prompt(fields.get("prompt")), key)
        except ReelgateError as exc:
            return openai_error(exc)
        return self._answer(task)


async def _preview(path: Path | None, storage: Any, name: str, variant: str) -> bytes:
    """A thumbnail or spritesheet of a stored video (copied to a temporary file if remote)."""
    render = previews.thumbnail if variant == "thumbnail" else previews.spritesheet
    if path is not None:
        return await asyncio.to_thread(render, path)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        with local.open("wb") as out:
            size = await storage.size(name)
            async for chunk in storage.read(name, 0, size - 1):
                await asyncio.to_thread(out.write, chunk)
        return await asyncio.to_thread(render, local)
