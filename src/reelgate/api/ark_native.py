"""The Ark-native surface: ``/api/v3/contents/generations/tasks`` with reelgate tokens.

So that ``Ark(base_url="http://reelgate/api/v3", api_key=<reelgate token>)`` works unchanged:
Ark's request and task shapes, its six statuses, its list filters and its error body
``{"error":{"code","message","param","type"}}`` — routed through reelgate (admission queue,
tracking, durable media), so the ``video_url`` it hands back does not expire in 24 h.
``X-Client-Request-Id`` is honoured as an idempotency key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_object
from reelgate.api.errors import ark_error
from reelgate.api.media import MediaLinks
from reelgate.api.seed import bearer
from reelgate.core import canonical
from reelgate.core.canonical import query_int
from reelgate.core.errors import InvalidRequest, ReelgateError
from reelgate.core.lifecycle import Status, Task
from reelgate.core.request import parse_seed_body
from reelgate.service import VideoService

# Ark body fields that are options of the model (checked against its capabilities).
_OPTIONS = (
    "resolution",
    "ratio",
    "duration",
    "frames",
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
)
_ROLES = {
    ("first_frame",): "first_frame",
    ("first_frame", "last_frame"): "first_last_frame",
}
MAX_PAGE_SIZE = 500
MAX_PAGES_SCANNED = 10_000
# How many ``filter.task_ids`` one list may name (as many as a page holds).
MAX_TASK_IDS = MAX_PAGE_SIZE
# Idempotency keys are stored in 255 characters: a longer client id is stored as its digest.
_KEY_ROOM = 255 - len("ark:")

__all__ = ["ArkSurface", "ark_error", "ark_status", "parse_ark_body"]


def client_request_key(value: str | None) -> str | None:
    """The idempotency key an ``X-Client-Request-Id`` stands for (refused if unusable)."""
    key = canonical.token(value, "X-Client-Request-Id")
    if key is None:
        return None
    if len(key) <= _KEY_ROOM:
        return f"ark:{key}"
    return "ark#" + hashlib.sha256(key.encode()).hexdigest()


def ark_status(task: Task) -> str:
    if task.status is Status.QUEUED:
        return "queued"
    if task.status is Status.IN_PROGRESS:
        return "running"
    if task.status is Status.SUCCESS:
        return "succeeded"
    if task.error_code in ("cancelled", "expired"):
        return task.error_code
    return "failed"


def parse_ark_body(body: dict[str, Any]) -> dict[str, Any]:
    """Ark's create body in the seed's terms (options go to ``metadata``)."""
    body = {k: v for k, v in body.items() if v is not None}  # the SDK sends unset fields as null
    if body.get("callback_url"):
        raise InvalidRequest(
            "callback_url is not relayed on this surface; set a reelgate webhook "
            "(PUT /v1/webhook) or use POST /v1/video/generations with callback_url",
            code="unsupported_parameter",
            param="callback_url",
        )
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise InvalidRequest("'content' is required", code="missing_parameter", param="content")
    texts: list[str] = []
    images: list[str] = []
    roles: list[str] = []
    for i, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif (
            kind == "image_url"
            and isinstance(item.get("image_url"), dict)
            and isinstance(item["image_url"].get("url"), str)
            and isinstance(item.get("role") or "", str)
        ):
            images.append(item["image_url"]["url"])
            roles.append(item.get("role") or "first_frame")
        else:
            raise InvalidRequest(
                f"content[{i}] must be a text or an image_url item",
                code="invalid_parameter",
                param=f"content[{i}]",
            )
    metadata = {k: body[k] for k in _OPTIONS if k in body and k != "duration"}
    if images:
        metadata["image_mode"] = _ROLES.get(tuple(roles), "reference_image")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidRequest(
            "'tools' must be a list of tool objects", code="invalid_parameter", param="tools"
        )
    if any(isinstance(t, dict) and t.get("type") == "web_search" for t in tools):
        metadata["web_search"] = True
    unknown = sorted(set(body) - {"model", "content", "tools", *_OPTIONS})
    if unknown:
        raise InvalidRequest(
            f"The parameter `{unknown[0]}` is not supported.",
            code="unsupported_parameter",
            param=unknown[0],
        )
    return {
        "model": body.get("model"),
        "prompt": " ".join(texts),
        "images": images,
        "duration": body.get("duration"),
        "metadata": metadata,
    }


class ArkSurface:
    def __init__(self, service: VideoService, links: MediaLinks, max_body: int) -> None:
        self.service = service
        self.links = links
        self.max_body = max_body

    def task_object(self, task: Task) -> dict[str, Any]:
        options = task.request.get("options") or {}
        out: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": ark_status(task),
            "error": None,
            "created_at": task.submit_time,
            "updated_at": task.finish_time or task.start_time or task.submit_time,
            "duration": task.request.get("duration"),
        }
        for key in ("resolution", "ratio", "seed", "service_tier", "execution_expires_after"):
            if key in options:
                out[key] = options[key]
        if task.status is Status.SUCCESS:
            epoch = self.links.epoch()
            out["content"] = {"video_url": self.links.url(task.video_ref or task.result_url, epoch)}
            frame = task.last_frame_ref or task.last_frame_url
            if frame:
                out["content"]["last_frame_url"] = self.links.url(frame, epoch)
            if task.usage_tokens is not None:
                out["usage"] = {
                    "completion_tokens": task.usage_tokens,
                    "total_tokens": task.usage_tokens,
                }
        elif task.status is Status.FAILURE:
            out["error"] = {"code": task.error_code, "message": task.error_message}
        return out

    async def create(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            key = client_request_key(request.headers.get("x-client-request-id"))
            fields = parse_ark_body(await read_object(request, self.max_body))
            task = await self.service.create(owner, parse_seed_body(fields), idempotency_key=key)
        except ReelgateError as exc:
            return ark_error(exc)
        return Response(json.dumps({"id": task.id}).encode(), media_type="application/json")

    async def get(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            task = await self.service.get(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return ark_error(exc)
        return Response(json.dumps(self.task_object(task)).encode(), media_type="application/json")

    async def list(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            q = request.query_params
            page = query_int(
                q.get("page_num"), "page_num", low=1, high=MAX_PAGES_SCANNED, default=1
            )
            size = query_int(q.get("page_size"), "page_size", low=1, high=MAX_PAGE_SIZE, default=10)
            wanted_ids = q.getlist("filter.task_ids")
            if len(wanted_ids) > MAX_TASK_IDS:
                raise InvalidRequest(
                    f"filter.task_ids names more than {MAX_TASK_IDS} tasks",
                    code="invalid_parameter",
                    param="filter.task_ids",
                )
            status = q.get("filter.status") or None
            model = q.get("filter.model") or None
            tier = q.get("filter.service_tier") or None
            if wanted_ids:
                found = []
                for task_id in dict.fromkeys(wanted_ids):
                    try:
                        found.append(await self.service.get(owner, task_id))
                    except ReelgateError:
                        continue  # unknown ids are simply not listed, as Ark does
            else:
                found, _ = await self.service.list(
                    owner, limit=min(page * size, MAX_PAGES_SCANNED), model=model
                )
            items = [
                t
                for t in found
                if (status is None or ark_status(t) == status)
                and (model is None or t.model == model)
                and (
                    tier is None
                    or (t.request.get("options") or {}).get("service_tier", "default") == tier
                )
            ]
        except ReelgateError as exc:
            return ark_error(exc)
        start = (page - 1) * size
        body = {
            "items": [self.task_object(t) for t in items[start : start + size]],
            "total": len(items),
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def delete(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            await self.service.delete(owner, request.path_params["task_id"])
        except ReelgateError as exc:
            return ark_error(exc)
        return Response(b"{}", media_type="application/json")
