"""How the SDK speaks reelgate's HTTP API, without any I/O: settings, request building, response
parsing, retry timing and server-sent-event decoding. Both clients share all of it.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import mimetypes
import os
import random
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import httpx
import pydantic

from reelgate.client.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    api_error,
)
from reelgate.client.models import Task, TaskStatus

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
URL_ENV = "REELGATE_API_URL"
TOKEN_ENV = "REELGATE_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
MAX_WAIT_SECONDS = 60.0  # the longest long-poll the server grants
RETRY_STATUSES = frozenset({429, 502, 503, 504})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is not honoured: back off as usual instead
# Idle event streams get a comment line every 15 s (REELGATE_SSE_KEEPALIVE_SECONDS): read past it.
STREAM_READ_TIMEOUT = 120.0
CHUNK_SIZE = 64 * 1024

Variant = Literal["video", "last_frame"]
VARIANTS: tuple[Variant, ...] = ("video", "last_frame")
ImageInput = str | os.PathLike[str]


class CreateOptions(TypedDict, total=False):
    """The optional fields of a create. A path is sent as a ``data:`` URI."""

    image: ImageInput | None
    images: Sequence[ImageInput] | None
    duration: int | None
    size: str | None
    metadata: Mapping[str, Any] | None
    callback_url: str | None
    idempotency_key: str | None


class ListFilters(TypedDict, total=False):
    """List filters; ``limit`` is the page size (1 to 100), ``after`` a task id to start after."""

    status: TaskStatus | None
    model: str | None
    limit: int | None
    after: str | None


@dataclass(frozen=True)
class Wire:
    """Where the server is, how to authenticate, and how patient to be."""

    base_url: str
    token: str | None
    timeout: httpx.Timeout
    max_retries: int
    user_agent: str
    jitter: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    @classmethod
    def configure(
        cls,
        base_url: str | None,
        token: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
    ) -> Wire:
        from reelgate import __version__  # here: the package imports this module as it starts

        base = base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL
        return cls(
            base_url=base.rstrip("/"),
            token=token if token is not None else os.environ.get(TOKEN_ENV),
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            max_retries=max(0, max_retries),
            user_agent=f"reelgate-python/{__version__}",
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        wait: float = 0.0,
    ) -> httpx.Request:
        """A request to the API (``path`` under ``base_url``) with the bearer token; ``wait`` is
        how long the server may hold the answer back (added to the read timeout)."""
        sent = {"Accept": "application/json", "User-Agent": self.user_agent}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        return httpx.Request(
            method,
            f"{self.base_url}{path}",
            params=params,
            json=body,
            headers=sent,
            extensions={"timeout": self._timeout(wait)},
        )

    def media_request(self, url: str) -> httpx.Request:
        """A GET of a signed media link: no bearer token, the link is its own credential."""
        headers = {"User-Agent": self.user_agent}
        return httpx.Request("GET", url, headers=headers, extensions={"timeout": self._timeout()})

    def _timeout(self, wait: float = 0.0) -> dict[str, float | None]:
        timeout = self.timeout.as_dict()
        if wait and timeout["read"] is not None:
            timeout["read"] += wait
        return timeout

    def retry_delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before retry ``attempt`` (0-based): the server's Retry-After when sensible,
        else exponential backoff with up to 25 % jitter, capped."""
        honoured = parse_retry_after(retry_after)
        if honoured is not None and 0 <= honoured <= MAX_RETRY_AFTER:
            return honoured
        delay = min(MAX_RETRY_DELAY, INITIAL_RETRY_DELAY * 2.0**attempt)
        return delay * (1 - 0.25 * self.jitter.random())


def task_path(task_id: str, suffix: str = "") -> str:
    return f"/v1/video/generations/{urllib.parse.quote(task_id, safe='')}{suffix}"


def create_body(model: str, prompt: str, options: CreateOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    image, images, metadata = options.get("image"), options.get("images"), options.get("metadata")
    optional = {
        "image": None if image is None else image_value(image),
        "images": None if images is None else [image_value(i) for i in images],
        "duration": options.get("duration"),
        "size": options.get("size"),
        "metadata": None if metadata is None else dict(metadata),
        "callback_url": options.get("callback_url"),
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    return body


def image_value(image: ImageInput) -> str:
    """A URL or ``data:`` URI as given; a local path read into a ``data:`` URI."""
    if isinstance(image, str):
        return image
    path = Path(image)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def file_name(task_id: str, variant: Variant, content_type: str | None) -> str:
    """A name for a downloaded file in a directory: the task id and the file's own extension."""
    default = ".mp4" if variant == "video" else ".png"
    mime = (content_type or "").partition(";")[0].strip()
    extension = mimetypes.guess_extension(mime) if mime else None
    suffix = "" if variant == "video" else "-last-frame"
    return f"{task_id}{suffix}{extension or default}"


def list_params(filters: ListFilters) -> dict[str, str]:
    return {name: str(value) for name, value in filters.items() if value is not None}


def wait_param(seconds: float) -> str:
    return f"{max(0.0, min(MAX_WAIT_SECONDS, seconds)):.3f}"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def poll_after(response: httpx.Response) -> float | None:
    ms = response.headers.get("openai-poll-after-ms")
    if ms and ms.isdigit():
        return int(ms) / 1000
    return parse_retry_after(response.headers.get("retry-after"))


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        raise APIResponseValidationError(
            f"the server's answer is not JSON: {content[:200]!r}"
        ) from None


def _task(data: Any, hint: float | None = None) -> Task:
    try:
        task = Task.model_validate(data)
    except pydantic.ValidationError as exc:
        raise APIResponseValidationError(f"the server's task cannot be read: {exc}") from None
    return task.model_copy(update={"poll_after": hint}) if hint is not None else task


def task_from(response: httpx.Response) -> Task:
    """The ``data`` object of a status GET or a cancel."""
    body = _json(response.content)
    data = body.get("data") if isinstance(body, dict) else None
    return _task(data, None if not isinstance(data, dict) else poll_after(response))


def task_from_event(data: str) -> Task:
    return _task(_json(data.encode()))


def created_task(response: httpx.Response) -> Task:
    """The create answer (new-api's ``id``, ``object``, ``created_at``, …) as a Task."""
    body = _json(response.content)
    if not isinstance(body, dict):
        raise APIResponseValidationError(f"the server's create answer is not an object: {body!r}")
    fields = {k: v for k, v in body.items() if k not in ("id", "object", "created_at")}
    progress = fields.get("progress", "")
    fields["progress"] = f"{progress}%" if isinstance(progress, int) else progress
    fields["submit_time"] = body.get("created_at", 0)
    return _task(fields)


def page_from(response: httpx.Response) -> tuple[list[Task], bool, str | None]:
    body = _json(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise APIResponseValidationError(f"the server's list answer has no data: {body!r}")
    after = body.get("next_after")
    return [_task(t) for t in body["data"]], bool(body.get("has_more")), after or None


def error_from(status: int, content: bytes) -> APIError:
    """The exception for an error answer, from reelgate's ``{"code","message","param"}``."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        message = str(body.get("message") or body["code"])
        param = body.get("param")
        return api_error(status, body["code"], message, param if isinstance(param, str) else None)
    # Not reelgate speaking (a proxy, a load balancer): keep its words, short.
    text = content.decode(errors="replace").strip()[:200]
    reason = text or httpx.codes.get_reason_phrase(status) or "error"
    return api_error(status, f"http_{status}", reason)


def connection_error(request: httpx.Request, exc: httpx.TransportError) -> APIConnectionError:
    where = f"{request.url.scheme}://{request.url.netloc.decode()}"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{request.method} {where}{request.url.path} timed out ({exc!r})")
    return APIConnectionError(f"cannot reach {where}: {exc or type(exc).__name__}")


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SSEDecoder:
    """Server-sent events from their lines (the WHATWG rules reelgate's stream needs)."""

    retry: float | None = None  # the server's reconnection delay (s), once it names one
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SSEEvent | None:
        """Take one line; an event is complete (and returned) at the blank line ending it."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None
