"""Reading request bodies: a size cap, JSON or multipart, and files turned into data: URIs.

Every body comes out canonical (``core.canonical``): JSON is measured before it is parsed
(``core.canonical_json``) and a large one is parsed on a thread, so a hostile body neither
stalls the event loop nor builds a huge structure; form fields pass the same checks.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from reelgate.core import canonical, canonical_json
from reelgate.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

# Form fields that may repeat; every other field keeps its last value.
_LIST_FIELDS = frozenset({"images", "images[]"})
# Bodies above this size are parsed on a thread (the scan and the parse are linear, but a few
# tens of megabytes would hold every other request for a noticeable time).
OFF_LOOP_BYTES = 256 * 1024


async def read_limited(request: Request, limit: int) -> bytes:
    declared = (request.headers.get("content-length") or "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 19 or int(declared) > limit):
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


async def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body, canonical, or a clear ``invalid_json`` (or field) error."""
    if not body.strip():
        raise InvalidRequest("request body is empty; send a JSON object", code="invalid_json")
    if len(body) > OFF_LOOP_BYTES:
        value = await asyncio.to_thread(canonical_json.loads, body)
    else:
        value = canonical_json.loads(body)
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return value


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a dict, from ``application/json`` or a form (multipart or urlencoded)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_limited(request, limit)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        return await json_object(body)
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields = await _form(request, limit)
        canonical.tree(fields)
        return fields
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
