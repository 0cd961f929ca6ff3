"""The last guard of the logs: a rendered line never carries a secret it could still hold."""

from __future__ import annotations

import io
import json
import logging

import pytest

from reelgate import logs
from reelgate.core.ids import new_token
from reelgate.core.webhooks import new_secret
from reelgate.settings import Settings


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    logs.configure(
        Settings(log_level="debug", log_format="json", admin_token="admin-secret-abcdef")
    )
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in before[0]:
        root.addHandler(h)
    root.setLevel(before[1])


def test_tokens_webhook_secrets_and_configured_keys_are_redacted(captured: io.StringIO) -> None:
    token = new_token().plaintext
    secret = new_secret()
    log = logging.getLogger("reelgate.test")
    log.error("token %s, secret %s, admin admin-secret-abcdef", token, secret)
    try:
        raise ValueError(f"a bug that quotes {token}")
    except ValueError:
        log.exception("with a trace")
    text = captured.getvalue()
    assert token not in text
    assert secret not in text
    assert "admin-secret-abcdef" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["event"] == "token [redacted], secret [redacted], admin [redacted]"
    assert "[redacted]" in second["exception"]


def test_driver_loggers_stay_quiet_at_debug(captured: io.StringIO) -> None:
    for name in ("sqlalchemy.engine.Engine", "aiosqlite", "asyncpg", "hpack"):
        logging.getLogger(name).info("INSERT INTO tasks … parameters: ('a prompt',)")
        logging.getLogger(name).debug("INSERT INTO tasks … parameters: ('a prompt',)")
    assert "a prompt" not in captured.getvalue()
    assert logging.getLogger("reelgate").isEnabledFor(logging.DEBUG)
