"""Structured logs: one JSON object per line, the creating request's id on every line about a
task (worker submit, its end, its webhook) and on the webhook itself; no token, no prompt."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reelgate.core.ids import new_token
from reelgate.store.sql import open_store
from tests.conftest import LiveServer, ark_gateway, server_env
from tests.receiver import Receiver

PROMPT = "a very particular prompt about a lighthouse"


def test_a_request_id_follows_its_task_from_create_to_webhook(tmp_path: Path) -> None:
    hook = Receiver().start()
    server = LiveServer(tmp_path, server_env(tmp_path, REELGATE_LOG_LEVEL="info"))
    server.start()
    try:
        with server.client() as c:
            assert c.put("/v1/webhook", json={"url": hook.url}).status_code == 200
            created = c.post(
                "/v1/video/generations",
                json={"model": "sandbox-t2v", "prompt": PROMPT, "duration": 1, "size": "160x120"},
                headers={"X-Request-Id": "trace-abc-123"},
            )
            assert created.headers["x-request-id"] == "trace-abc-123"
            task_id = created.json()["task_id"]
            assert server.wait_terminal(task_id)["status"] == "success"
            # Without a usable id of its own, a request gets one.
            other = c.get("/v1/models", headers={"X-Request-Id": "bad id with spaces"})
            assert other.headers["x-request-id"].startswith("req_")
        deadline = time.monotonic() + 20
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
        hook.stop()
    assert hook.received[0].headers.get("x-request-id") == "trace-abc-123"

    text = (tmp_path / "server.log").read_text()
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"event", "level", "timestamp", "logger"} <= set(line) for line in lines)
    about = [line for line in lines if line.get("task_id") == task_id]
    events = {line["event"].split(" ")[0] + " " + line["event"].split(" ")[1] for line in about}
    assert {"task submitted", "task ended"} <= events
    assert any(line["event"].startswith("webhook ") for line in about)
    assert {line.get("request_id") for line in about} == {"trace-abc-123"}
    assert PROMPT not in text
    assert server.token not in text
    assert server.token[:12] not in text  # not even a long part of it


ARK_KEY = "ark-settings-key-5b7c1e2f9d"
ADMIN_KEY = "admin-secret-for-the-log-test"
ENCRYPTION = "a passphrase that seals channel keys"
CHANNEL_KEY = "ark-channel-key-0e4d8a6c13"
ARK_PROMPT = "a prompt nobody should read in a log: seventeen herons"


def test_no_secret_and_no_prompt_in_the_logs_even_at_debug(tmp_path: Path) -> None:
    """A full scenario at debug level (create with a prompt, a webhook with its secret, an admin
    channel with its key, a task that ends, a delivery): the server's whole stderr names none
    of the secrets and not the prompt."""
    hook = Receiver().start()
    env = {
        "REELGATE_LOG_LEVEL": "debug",
        "REELGATE_LOG_FORMAT": "json",
        "REELGATE_ADMIN_TOKEN": ADMIN_KEY,
        "REELGATE_ENCRYPTION_KEY": ENCRYPTION,
    }
    try:
        with ark_gateway(tmp_path, ARK_KEY, **env) as (server, sim):
            sim.api_keys.add(CHANNEL_KEY)
            with server.client(ADMIN_KEY) as admin, server.client() as c:
                added = admin.post(
                    "/v1/admin/channels",
                    json={
                        "name": "second",
                        "provider": "ark",
                        "api_key": CHANNEL_KEY,
                        "base_url": server.env["REELGATE_ARK_BASE_URL"],
                        "priority": -1,
                    },
                )
                assert added.status_code == 201, added.text
                webhook = c.put("/v1/webhook", json={"url": hook.url})
                secret = webhook.json()["data"]["secret"]
                created = c.post(
                    "/v1/video/generations",
                    json={"model": "doubao-seedance-1-0-pro-250528", "prompt": ARK_PROMPT},
                )
                assert created.status_code == 200, created.text
                assert server.wait_terminal(created.json()["task_id"])["status"] == "success"
                deadline = time.monotonic() + 20
                while not hook.received and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert hook.received
            token = server.token
            # stderr: every log line (stdout only shows the first token, on purpose).
            text = (tmp_path / "server.log").read_text()
    finally:
        hook.stop()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line["level"] == "debug" for line in lines)  # the level really was debug
    leaked = [
        name
        for name, value in {
            "api token": token,
            "Ark key (settings)": ARK_KEY,
            "Ark key (admin channel)": CHANNEL_KEY,
            "admin token": ADMIN_KEY,
            "encryption key": ENCRYPTION,
            "webhook secret": secret,
            "webhook secret (its key)": secret.removeprefix("whsec_"),
            "prompt": ARK_PROMPT,
        }.items()
        if value in text
    ]
    assert leaked == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_database_error_never_quotes_the_statements_parameters(tmp_path: Path) -> None:
    """What an unexpected database error says can end up in a log line with its trace."""
    store = await open_store(f"sqlite:///{tmp_path / 'p.db'}")
    await store.migrate()
    token = new_token()
    await store.create_token("first", token, 0)
    try:
        with pytest.raises(sa.exc.IntegrityError) as raised:
            await store.create_token("a secret name in the parameters", token, 0)
    finally:
        await store.close()
    assert "a secret name in the parameters" not in str(raised.value)
    assert token.hash not in str(raised.value)
