"""The SDK's operations, written once for both clients as generators of effects.

An operation (create, wait, stream, download, …) yields what it needs done — send a request,
sleep, read a streamed body line by line or chunk by chunk, close it, hand a task to the caller —
and is sent back the outcome. It does no network I/O itself: ``Client`` performs the effects with
``httpx.Client`` and ``AsyncClient`` with ``httpx.AsyncClient``, both through ``Runner``. Retries,
long-polls, event-stream resumption and paging therefore exist exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import httpx

from reelgate.client import _wire as wire_
from reelgate.client._wire import CreateOptions, ListFilters, Variant, Wire
from reelgate.client.errors import (
    APIConnectionError,
    NoContentError,
    NotFoundError,
    WaitTimeoutError,
)
from reelgate.client.models import Task

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Outcome: the response (its body not yet read if ``stream``), or the TransportError."""

    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Iterate:
    """Start reading a streamed body by lines (or byte chunks).

    Outcome: the source to pass to ``Next``.
    """

    response: httpx.Response
    lines: bool


@dataclass(frozen=True, slots=True)
class Next:
    """Outcome: the source's next item, None at its end, or the TransportError that ended it."""

    source: Any


@dataclass(frozen=True, slots=True)
class Close:
    response: httpx.Response


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand a task to the caller (``stream()``, paging); the flow resumes when it wants more."""

    task: Task


Action: TypeAlias = Send | Sleep | Iterate | Next | Close
Flow: TypeAlias = Generator[Action | Emit, Any, T]


class Runner(Generic[T]):
    """Steps one flow: the client performs each action and hands back its outcome.

    Tasks the flow emits are queued for the client to hand on (before it performs the next
    action, so nothing more is fetched than the caller has asked for). The runner remembers the
    streamed responses the flow opened, so a client can close them whatever way the flow ends
    (an error, or a caller that stops iterating early).
    """

    result: T  # what the flow returned, once ``advance`` has answered None

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._pending: Action | None = None
        self._streams: list[httpx.Response] = []
        self._emitted: list[Task] = []

    def advance(self, outcome: object = None) -> Action | None:
        """Send the outcome of the pending action; the next one, or None once the flow is done."""
        pending = self._pending
        if isinstance(pending, Send) and pending.stream and isinstance(outcome, httpx.Response):
            self._streams.append(outcome)
        try:
            step = self._flow.send(outcome)
            while isinstance(step, Emit):
                self._emitted.append(step.task)
                step = self._flow.send(None)
        except StopIteration as stop:
            self.result, step = stop.value, None
        self._pending = step
        return step

    def emitted(self) -> list[Task]:
        """The tasks emitted since the last call."""
        tasks, self._emitted = self._emitted, []
        return tasks

    def finish(self) -> list[httpx.Response]:
        """End the flow and give back the streamed responses still to close."""
        self._flow.close()
        streams, self._streams = self._streams, []
        return streams


def send(wire: Wire, request: httpx.Request, *, stream: bool = False) -> Flow[httpx.Response]:
    """Send with retries on connection errors, 429 and 502/503/504, backing off in between
    (honouring Retry-After). The same request is re-sent, so a create keeps its Idempotency-Key.
    An error answer raises its ``APIError``."""
    attempt = 0
    while True:
        outcome = yield Send(request, stream)
        if isinstance(outcome, httpx.TransportError):
            if attempt >= wire.max_retries:
                raise wire_.connection_error(request, outcome) from outcome
            delay = wire.retry_delay(attempt, None)
        elif outcome.status_code in wire_.RETRY_STATUSES and attempt < wire.max_retries:
            delay = wire.retry_delay(attempt, outcome.headers.get("retry-after"))
            yield Close(outcome)
        elif outcome.is_error:
            content = (yield from read_all(outcome)) if stream else outcome.content
            raise wire_.error_from(outcome.status_code, content)
        else:
            assert isinstance(outcome, httpx.Response)
            return outcome
        attempt += 1
        yield Sleep(delay)


def read_all(response: httpx.Response) -> Flow[bytes]:
    """A streamed body in full (only ever a short error body)."""
    chunks = yield Iterate(response, lines=False)
    parts: list[bytes] = []
    while isinstance(chunk := (yield Next(chunks)), bytes):
        parts.append(chunk)
    yield Close(response)
    return b"".join(parts)


def create(wire: Wire, model: str, prompt: str, options: CreateOptions) -> Flow[Task]:
    # One key per call, kept across its retries: the server answers a retried create with the
    # task the first attempt made, if it made one.
    key = options.get("idempotency_key") or str(uuid.uuid4())
    request = wire.request(
        "POST",
        "/v1/video/generations",
        body=wire_.create_body(model, prompt, options),
        headers={"Idempotency-Key": key},
    )
    return wire_.created_task((yield from send(wire, request)))


def get(wire: Wire, task_id: str, wait: float | None = None) -> Flow[Task]:
    params = None if wait is None else {"wait": f"{wait:g}"}
    request = wire.request("GET", wire_.task_path(task_id), params=params, wait=wait or 0.0)
    return wire_.task_from((yield from send(wire, request)))


def cancel(wire: Wire, task_id: str) -> Flow[Task]:
    request = wire.request("POST", wire_.task_path(task_id, "/cancel"))
    return wire_.task_from((yield from send(wire, request)))


def wait(
    wire: Wire,
    task_id: str,
    timeout: float | None,
    on_progress: Callable[[Task], object] | None,
) -> Flow[Task]:
    """Long-poll until the task ends: the server holds each GET until the task changes (or 60 s
    pass), so there is nothing to sleep here. ``on_progress`` sees every new state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    path = wire_.task_path(task_id)
    request = wire.request("GET", path)
    seen: Task | None = None
    while True:
        response = yield from send(wire, request)
        # 304: nothing changed while the server waited (our ETag still names the latest state).
        task = seen if response.status_code == 304 and seen else wire_.task_from(response)
        if on_progress is not None and (seen is None or task.model_dump() != seen.model_dump()):
            on_progress(task)
        seen = task
        if task.done:
            return task
        remaining = wire_.MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(task, timeout or 0.0)
        etag = response.headers.get("etag")
        request = wire.request(
            "GET",
            path,
            params={"wait": wire_.wait_param(remaining)},
            headers={"If-None-Match": etag} if etag else None,
            wait=min(wire_.MAX_WAIT_SECONDS, remaining),
        )


def create_and_wait(
    wire: Wire,
    model: str,
    prompt: str,
    options: CreateOptions,
    timeout: float | None,
    on_progress: Callable[[Task], object] | None,
) -> Flow[Task]:
    task = yield from create(wire, model, prompt, options)
    return (yield from wait(wire, task.task_id, timeout, on_progress))


def stream(wire: Wire, task_id: str) -> Flow[None]:
    """Each status of the task as the server pushes it, until the terminal one. A dropped
    connection is resumed with ``Last-Event-ID``, so nothing is missed and nothing repeated."""
    retry: float | None = None
    last_id: str | None = None
    drops = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        path = wire_.task_path(task_id, "/events")
        request = wire.request("GET", path, headers=headers, wait=wire_.STREAM_READ_TIMEOUT)
        response = yield from send(wire, request, stream=True)
        decoder = wire_.SSEDecoder(retry=retry)
        lines = yield Iterate(response, lines=True)
        while isinstance(line := (yield Next(lines)), str):
            event = decoder.feed(line)
            if event is None or event.event != "status":
                continue
            task = wire_.task_from_event(event.data)
            last_id, drops = event.id or last_id, 0
            yield Emit(task)
            if task.done:
                yield Close(response)
                return
        yield Close(response)
        # The stream ended before the task did: a dropped connection or a restarting server.
        if drops >= wire.max_retries:
            raise APIConnectionError(f"the event stream of {task_id} keeps dropping ({line!r})")
        retry = decoder.retry
        yield Sleep(retry if retry is not None else wire.retry_delay(drops, None))
        drops += 1


def list_page(wire: Wire, filters: ListFilters) -> Flow[tuple[list[Task], bool, str | None]]:
    request = wire.request("GET", "/v1/video/generations", params=wire_.list_params(filters))
    return wire_.page_from((yield from send(wire, request)))


def list_tasks(wire: Wire, filters: ListFilters) -> Flow[None]:
    """Every matching task (after ``filters["after"]``, if set), page by page."""
    while True:
        tasks, more, cursor = yield from list_page(wire, filters)
        for task in tasks:
            yield Emit(task)
        if not more or not cursor:
            return
        filters = {**filters, "after": cursor}


def download(wire: Wire, task_id: str, dest: Path, variant: Variant) -> Flow[Path]:
    """Stream a task's file to ``dest`` (a file, or a directory to name it in), never holding it
    in memory; a partial file never takes the final name."""
    if variant not in wire_.VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(wire_.VARIANTS)}")
    path = wire_.task_path(task_id, "/content")
    request = wire.request("GET", path, params={"variant": variant})
    try:
        response = yield from send(wire, request, stream=True)
    except NotFoundError as exc:
        if exc.code != "not_found":  # task_not_found and the like are the answer
            raise
        # A server without the content route: fetch the file from the task's signed link.
        task = yield from get(wire, task_id)
        url = task.result_url if variant == "video" else task.last_frame_url
        if not url:
            raise NoContentError(f"task {task_id} has no {variant} ({task.status})") from None
        response = yield from send(wire, wire.media_request(url), stream=True)
    if dest.is_dir():
        dest = dest / wire_.file_name(task_id, variant, response.headers.get("content-type"))
    part = dest.with_name(f".{dest.name}.part")
    try:
        with part.open("wb") as out:
            chunks = yield Iterate(response, lines=False)
            while isinstance(chunk := (yield Next(chunks)), bytes):
                out.write(chunk)
        yield Close(response)
        if chunk is not None:
            raise wire_.connection_error(response.request, chunk) from chunk
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return dest
