"""Reading request bodies: a size cap, JSON or multipart, and files turned into data: URIs."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from reelgate.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

# Form fields that may repeat; every other field keeps its last value.
_LIST_FIELDS = frozenset({"images", "images[]"})


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdecimal() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    # Later readers (request.form()) reuse the bytes instead of the consumed stream.
    request._body = body
    return body


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body, or a clear ``invalid_json`` error."""
    if not body.strip():
        raise InvalidRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return value


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a dict, from ``application/json`` or a form (multipart or urlencoded)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_limited(request, limit)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        return json_object(body)
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _form(request, limit)
    raise UnsupportedMediaType(
        f"unsupported content type '{content_type}'; send application/json or multipart/form-data"
    )


async def _form(request: Request, limit: int) -> dict[str, Any]:
    try:
        form = await request.form(max_files=16, max_fields=64, max_part_size=limit)
    except Exception as exc:
        raise InvalidRequest(f"malformed form body: {exc}", code="invalid_form") from None
    out: dict[str, Any] = {}
    try:
        for key in form:
            values = [await _field(v) for v in form.getlist(key)]
            name = key.removesuffix("[]")
            if key in _LIST_FIELDS:
                out.setdefault(name, []).extend(values)
            else:
                out[name] = values[-1]
    finally:
        await form.close()
    return out


async def _field(value: str | UploadFile) -> str:
    if isinstance(value, str):
        return value
    data = await value.read()
    mime = value.content_type or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
