"""Process-wide logging: one JSON object per line (or readable text), with the request id.

Every module logs through the standard library (``logging.getLogger("reelgate.…")``); structlog's
``ProcessorFormatter`` renders those records, adding what the context carries: the
``request_id`` of the HTTP request that created a task follows that task through the worker's
submit, look-ups and end, and into its webhook deliveries (``bound`` sets it around each).

What is never logged: API tokens, upstream keys, webhook secrets, and prompts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

from reelgate.settings import Settings

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# The id of the HTTP request being served (set by the request observer, one per request).
REQUEST_ID: ContextVar[str] = ContextVar("reelgate_request_id", default="")
# New ids: a random prefix per process and a counter (no system call per request).
_ID_PREFIX = "req_" + secrets.token_hex(6)
_ids = itertools.count(1)


def log_format(settings: Settings, stream: TextIO) -> str:
    """``json`` or ``text``: ``auto`` is text for a person at a terminal, JSON for a collector."""
    if settings.log_format != "auto":
        return settings.log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(settings: Settings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format(settings, sys.stderr) == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Alembic narrates every start at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # httpx logs every upstream request at INFO: a worker would log one line per look-up.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.INFO, root.level))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):x}"


def request_id_from_header(value: bytes | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane id, else a fresh one."""
    if value and _VALID_ID.match(value):
        return value.decode("ascii")
    return new_request_id()


def current_request_id() -> str:
    found = structlog.contextvars.get_contextvars().get("request_id")
    return found if isinstance(found, str) and found else REQUEST_ID.get()


def _add_request_id(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    if "request_id" not in event:
        request_id = REQUEST_ID.get()
        if request_id:
            event["request_id"] = request_id
    return event


@contextlib.contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Context (request id, task id…) for every log line in the block."""
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None and v != ""}
    ):
        yield
