"""Process-wide logging: one JSON object per line (or readable text), with the request id.

Every module logs through the standard library (``logging.getLogger("reelgate.…")``); structlog's
``ProcessorFormatter`` renders those records, adding what the context carries: the
``request_id`` of the HTTP request that created a task follows that task through the worker's
submit, look-ups and end, and into its webhook deliveries (``bound`` sets it around each).

What is never logged: API tokens, upstream keys, webhook secrets, and prompts. reelgate's own
lines name ids, never values; the drivers that would narrate statements with their parameters
(SQLAlchemy, aiosqlite, asyncpg) or HTTP headers (hpack) are held at WARNING whatever the level;
and as a last guard every rendered line has the secrets it could still carry (a token or
webhook secret by its shape, the keys in the settings by value) replaced by ``[redacted]``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets
import sys
from collections.abc import Iterator, MutableMapping
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


# Loggers that narrate SQL with its parameters, or HTTP headers, at INFO or DEBUG.
_DRIVER_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "hpack", "h2", "redis", "multipart")
# Secrets recognisable by their shape: API tokens (core.ids) and webhook secrets (core.webhooks).
_SECRET_SHAPES = re.compile(r"(?:rg_|whsec_)[A-Za-z0-9_+/=-]{8,}")
REDACTED = "[redacted]"


class Redactor:
    """Replaces secrets in a rendered log line: by their shape, and the ``known`` values."""

    def __init__(self, known: list[str]) -> None:
        # Longest first, so that a secret containing another is replaced whole; short values
        # would only blank out common words.
        self.known = sorted({k for k in known if len(k) >= 8}, key=len, reverse=True)

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.redact(value)
        return event

    def redact(self, text: str) -> str:
        for secret in self.known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _SECRET_SHAPES.sub(REDACTED, text)


def _known_secrets(settings: Settings) -> list[str]:
    values = [
        settings.secret_key,
        settings.ark_api_key,
        settings.redis_url,
        settings.encryption_key,
        settings.media_s3_access_key_id,
        settings.media_s3_secret_access_key,
        settings.admin_token,
        *(a.api_key for a in settings.ark_accounts),
    ]
    return [v.get_secret_value() for v in values if v is not None]


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
            Redactor(_known_secrets(settings)),
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
    for name in _DRIVER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


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
