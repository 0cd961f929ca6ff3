"""Replicate's pure parts: prediction inputs, statuses (``aborted`` included), errors,
``Cancel-After``, and webhook signatures as Standard Webhooks test vectors: the specification's
own example, forged, stale, and a rotated secret (re-read from the simulator over loopback)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import standardwebhooks

from reelgate.core.capabilities import normalize
from reelgate.core.lifecycle import Callback, UpstreamState
from reelgate.core.request import VideoRequest
from reelgate.providers.http import Answer
from reelgate.providers.replicate import models, webhooks
from reelgate.providers.replicate.provider import (
    ReplicateProvider,
    cancel_after,
    error_of,
    observe,
)
from reelgate.testing import serve_in_thread
from reelgate.testing.replicate_rules import duration as _duration
from reelgate.testing.replicate_simulator import ReplicateSimulator
from reelgate.testing.simulator.webhooks import Delivery

CAPS = {c.name: c for c in models.catalogue()}
# The Standard Webhooks specification's example (standardwebhooks.com, its README).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str, ts: str = SPEC_TS) -> dict[str, str]:
    return {"webhook-id": SPEC_ID, "webhook-timestamp": ts, "webhook-signature": signature}


def test_the_standard_webhooks_example_verifies_and_forgeries_do_not() -> None:
    key = webhooks.secret_key(SPEC_SECRET)
    assert key is not None
    assert webhooks.signature(key, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    now = int(SPEC_TS)
    assert webhooks.verify(headers(SPEC_SIGNATURE), SPEC_BODY, key, now)
    # One of several listed signatures is enough (a secret being rotated signs twice).
    assert webhooks.verify(headers(f"v1,bm9wZQ== {SPEC_SIGNATURE}"), SPEC_BODY, key, now)
    assert not webhooks.verify(headers(SPEC_SIGNATURE), SPEC_BODY + b" ", key, now)  # forged
    other = webhooks.secret_key("whsec_" + "QUFBQUFBQUFBQUFBQUFBQQ==")
    assert not webhooks.verify(headers(SPEC_SIGNATURE), SPEC_BODY, other, now)
    assert not webhooks.verify(headers(SPEC_SIGNATURE), SPEC_BODY, key, now + 301)  # stale
    assert not webhooks.verify(headers(SPEC_SIGNATURE), SPEC_BODY, None, now)
    assert not webhooks.verify({}, SPEC_BODY, key, now)
    assert webhooks.secret_key("whsec_not base64!") is None
    # The reference implementation agrees on a signature of ours.
    ours = webhooks.signature(key, "msg_1", "1700000000", b'{"id":"p1"}')
    reference = standardwebhooks.Webhook(SPEC_SECRET)
    assert reference.sign("msg_1", _at(1700000000), '{"id":"p1"}') == ours


def _at(ts: int) -> object:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def test_a_rotated_secret_is_read_again_after_a_failed_verification() -> None:
    sim = ReplicateSimulator(api_keys={"tok"})
    handle = serve_in_thread(sim)
    body = b'{"id": "p1", "status": "succeeded"}'

    def delivered() -> Callback:
        sim.predictions["p1"] = _prediction()
        signed = sim.sign(Delivery("p1", "", body, {"webhook-id": "msg_1"}))
        return Callback(body, {"webhook-id": "msg_1", **signed}, "https://gw.test/cb")

    async def scenario() -> None:
        provider = ReplicateProvider("tok", base_url=handle.base_url)
        try:
            await provider._refresh_secret()
            hint = provider.parse_callback(delivered())
            assert hint is not None
            assert (hint.upstream_id, hint.final) == ("p1", True)
            sim.rotate_secret("tok")
            provider._secret_at = time.time() - webhooks.REFETCH_S
            assert provider.parse_callback(delivered()) is None
            assert provider._refreshing is not None
            await provider._refreshing
            assert provider.parse_callback(delivered()) is not None
            # A flood of bad signatures does not become a flood of secret reads.
            forged = Callback(body, {"webhook-id": "x", "webhook-timestamp": "1"}, "")
            assert provider.parse_callback(forged) is None
            assert sim.calls["secret"] == 2
        finally:
            await provider.close()

    try:
        asyncio.run(scenario())
    finally:
        handle.stop()


def _prediction() -> object:
    from reelgate.testing.replicate_simulator import Prediction
    from reelgate.testing.simulator import Outcome

    return Prediction("p1", "tok", "m/n", "v", {}, time.time(), Outcome.SUCCESS, 1, 1)


def test_inputs_follow_each_models_fields() -> None:
    kling = normalize(
        VideoRequest(model="kling-v2-1-master", prompt="x", images=("https://i/a.png",)),
        CAPS["kling-v2-1-master"],
    )
    assert models.prediction_input(kling) == {
        "prompt": "x",
        "duration": 5,
        "start_image": "https://i/a.png",
    }
    hailuo = normalize(
        VideoRequest(model="MiniMax-Hailuo-02", prompt="x", metadata={"resolution": "1080P"}),
        CAPS["MiniMax-Hailuo-02"],
    )
    assert models.prediction_input(hailuo) == {"prompt": "x", "duration": 6, "resolution": "1080p"}
    veo = normalize(
        VideoRequest(model="veo-3.0-fast-generate-001", prompt="x"),
        CAPS["veo-3.0-fast-generate-001"],
    )
    assert models.prediction_input(veo) == {
        "prompt": "x",
        "resolution": "720p",
        "aspect_ratio": "16:9",
    }


def test_statuses_map_with_aborted_as_expired_and_removed_outputs_as_failures() -> None:
    def state(status: str, **more: object) -> object:
        seen = observe({"status": status, **more})
        return None if seen is None else (seen.state, seen.error_code)

    assert state("starting") == (UpstreamState.QUEUED, "")
    assert state("processing") == (UpstreamState.RUNNING, "")
    assert state("canceled") == (UpstreamState.CANCELLED, "")
    assert state("aborted") == (UpstreamState.EXPIRED, "expired")
    assert state("failed", error="boom") == (UpstreamState.FAILED, "upstream_failed")
    flagged = "The input or output was flagged as sensitive. (E005)"
    assert state("failed", error=flagged) == (UpstreamState.FAILED, "content_moderation")
    assert state("succeeded", output=None, data_removed=True) == (UpstreamState.FAILED, "expired")
    assert state("queued_somewhere") is None
    done = observe(
        {
            "status": "succeeded",
            "output": ["https://d/x.mp4"],
            "completed_at": "2026-01-01T00:00:00.5Z",
        }
    )
    assert done is not None
    assert done.video_url == "https://d/x.mp4"
    assert done.extra["updated_at"] == 1767225600.5


def test_errors_and_deadlines() -> None:
    def code(status: int, body: object, **h: str) -> str:
        return error_of(Answer(status, body, httpx.Headers(h))).code

    assert code(401, {"detail": "no"}) == "upstream_auth_failed"
    assert code(402, {"detail": "Insufficient credit"}) == "upstream_account_error"
    assert code(404, {"detail": "no such model"}) == "upstream_model_unavailable"
    assert code(422, {"detail": "input.duration: must be one of 5, 10"}) == "invalid_parameter"
    assert code(422, {"detail": "flagged as sensitive (E005)"}) == "content_moderation"
    throttled = error_of(Answer(429, {"detail": "slow"}, httpx.Headers({"retry-after": "12"})))
    assert (throttled.code, throttled.retry_after) == ("upstream_rate_limited", 12.0)
    assert code(503, {"detail": "x"}) == "upstream_unavailable"
    assert cancel_after(1000.0, 100.4) == "899s"
    assert cancel_after(0.0, 100.0) is None
    assert cancel_after(100.5, 100.0) is None
    assert [_duration(v) for v in ("30s", "5m", "1h30m", "1.5s", "", "5x")] == [
        30.0, 300.0, 5400.0, 1.5, None, None,
    ]  # fmt: skip
    assert json.dumps({"ok": True})
