"""Webhook signatures as receivers check them: the standardwebhooks library and the openai SDK."""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks
from openai import InvalidWebhookSignatureError, OpenAI

from reelgate.core import webhooks
from reelgate.core.lifecycle import Status, Task


def _signed(secrets: list[str]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "video.completed", "data": {"task_id": "task_1"}}).encode()
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": webhooks.signature(secrets, "msg_1", stamp, body),
    }
    return body, headers


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    body, headers = _signed([secret])
    assert standardwebhooks.Webhook(secret).verify(body, headers)["data"]["task_id"] == "task_1"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(webhooks.new_secret()).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body + b" ", headers)


def test_signatures_verify_with_the_openai_sdk() -> None:
    secret = webhooks.new_secret()
    body, headers = _signed([secret])
    client = OpenAI(api_key="unused", webhook_secret=secret)
    client.webhooks.verify_signature(body, headers)  # raises when invalid
    with pytest.raises(InvalidWebhookSignatureError):
        client.webhooks.verify_signature(body, headers, secret=webhooks.new_secret())


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = webhooks.new_secret(), webhooks.new_secret()
    body, headers = _signed([new, old])
    assert standardwebhooks.Webhook(old).verify(body, headers)
    assert standardwebhooks.Webhook(new).verify(body, headers)
    endpoint = webhooks.Endpoint("tok", "https://x", new, old, previous_until=100.0)
    assert endpoint.secrets_at(99.0) == [new, old]
    assert endpoint.secrets_at(100.0) == [new]


def test_the_retry_schedule() -> None:
    delays = [webhooks.next_attempt(n, 0.0) for n in range(1, webhooks.MAX_ATTEMPTS + 1)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None]
    assert webhooks.next_attempt(0, 7.0) == 7.0  # the first attempt: now
    assert webhooks.next_attempt(1, 0.0, scale=0.01) == pytest.approx(0.05)


def test_events() -> None:
    base = Task("t", "o", "p", "m", {}, Status.QUEUED, 0)
    assert webhooks.event_type(base) is None
    done = Task("t", "o", "p", "m", {}, Status.SUCCESS, 0, result_url="u")
    assert webhooks.event_type(done) == "video.completed"
    failed = Task("t", "o", "p", "m", {}, Status.FAILURE, 0, error_code="upstream_failed")
    assert webhooks.event_type(failed) == "video.failed"
    cancelled = Task("t", "o", "p", "m", {}, Status.FAILURE, 0, error_code="cancelled")
    assert webhooks.event_type(cancelled) == "video.cancelled"
