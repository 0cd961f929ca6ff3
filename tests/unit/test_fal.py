"""fal's pure parts: endpoint ids and apps, request mapping, statuses and errors, and webhook
signatures (Ed25519 against a JWKS) as test vectors: good, forged, stale, rotated."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reelgate.core.capabilities import fits, normalize
from reelgate.core.errors import InvalidRequest
from reelgate.core.lifecycle import Callback, UpstreamState
from reelgate.core.request import VideoRequest
from reelgate.providers.ark import models as ark_models
from reelgate.providers.fal import models, webhooks
from reelgate.providers.fal.provider import FalProvider, error_of, observe, split_id
from reelgate.providers.http import Answer
from reelgate.testing import serve_in_thread
from reelgate.testing.fal_simulator import FalSimulator
from reelgate.testing.simulator.webhooks import Delivery

SEEDANCE = "doubao-seedance-1-0-pro-250528"
CAPS = {c.name: c for c in models.catalogue()}
# A fixed key (Ed25519 signatures are deterministic): the vectors below do not change.
PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
BODY = b'{"request_id":"8a1b","gateway_request_id":"8a1b","status":"OK","payload":{}}'
NOW = 1_760_000_000


def jwk(private: Ed25519PrivateKey, *, padded: bool = False) -> dict[str, str]:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x if padded else x.rstrip("=")}


def signed(private: Ed25519PrivateKey, body: bytes = BODY, ts: int = NOW) -> dict[str, str]:
    message = webhooks.signed_message("8a1b", "user-1", str(ts), body)
    return {
        webhooks.REQUEST_ID: "8a1b",
        webhooks.USER_ID: "user-1",
        webhooks.TIMESTAMP: str(ts),
        webhooks.SIGNATURE: private.sign(message).hex(),
    }


def test_the_signed_message_is_ids_timestamp_and_the_bodys_digest() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    assert webhooks.signed_message("8a1b", "user-1", "1760000000", BODY) == (
        f"8a1b\nuser-1\n1760000000\n{digest}".encode()
    )


def test_signatures_verify_against_the_jwks_and_nothing_else() -> None:
    keys = webhooks.parse_jwks({"keys": [jwk(PRIVATE, padded=True)]})
    assert len(keys) == 1
    assert webhooks.verify(signed(PRIVATE), BODY, keys, NOW) == "8a1b"
    # forged: another body, another key, a signature that is not hex, headers missing
    assert webhooks.verify(signed(PRIVATE), BODY.replace(b"OK", b"ERROR"), keys, NOW) is None
    assert webhooks.verify(signed(OTHER), BODY, keys, NOW) is None
    assert webhooks.verify({**signed(PRIVATE), webhooks.SIGNATURE: "zz"}, BODY, keys, NOW) is None
    assert webhooks.verify({}, BODY, keys, NOW) is None
    # stale: more than five minutes either way
    assert webhooks.verify(signed(PRIVATE, ts=NOW - 301), BODY, keys, NOW) is None
    assert webhooks.verify(signed(PRIVATE, ts=NOW + 301), BODY, keys, NOW) is None
    assert webhooks.verify(signed(PRIVATE, ts=NOW - 299), BODY, keys, NOW) == "8a1b"
    # rotated: a JWKS with the old and the new key verifies both
    both = webhooks.parse_jwks({"keys": [jwk(OTHER), jwk(PRIVATE), {"kty": "RSA", "n": "x"}]})
    assert len(both) == 2
    assert webhooks.verify(signed(OTHER), BODY, both, NOW) == "8a1b"
    assert webhooks.parse_jwks({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}) == []
    assert webhooks.parse_jwks("nonsense") == []


def test_a_signature_no_cached_key_verifies_fetches_the_keys_again() -> None:
    """After fal rotates its key, the first webhook signed with the new one is no hint (it is
    looked up anyway) and the keys are fetched again; the next one verifies. The keys come from
    the fal simulator's JWKS, over loopback."""
    sim = FalSimulator(api_keys={"k"})
    handle = serve_in_thread(sim)
    url = "https://gw.test/v1/callbacks/fal/t/tok?fal_app=fal-ai/veo3"

    def delivered() -> Callback:
        delivery = Delivery("8a1b", url, BODY, {})
        return Callback(BODY, {k.lower(): v for k, v in sim.sign(delivery).items()}, url)

    async def scenario() -> None:
        provider = FalProvider("k", jwks_url=f"{handle.url}/.well-known/jwks.json")
        try:
            await provider._refresh_keys()
            assert provider.parse_callback(delivered()) is not None
            sim.rotate_key(keep_old=False)
            provider._keys.fetched_at = time.time() - webhooks.REFETCH_S  # old enough
            assert provider.parse_callback(delivered()) is None
            assert provider._refreshing is not None
            await provider._refreshing
            hint = provider.parse_callback(delivered())
            assert hint is not None
            assert (hint.upstream_id, hint.final) == ("fal-ai/veo3/8a1b", True)
            # The same delivery without the app in the address names no task of ours.
            bare = dataclasses.replace(delivered(), url="https://gw.test/cb")
            assert provider.parse_callback(bare) is None
        finally:
            await provider.close()

    try:
        asyncio.run(scenario())
    finally:
        handle.stop()


def test_status_and_result_live_under_the_app_only() -> None:
    assert models.app_of("fal-ai/kling-video/v2.1/master/text-to-video") == "fal-ai/kling-video"
    assert models.app_of("workflows/me/flow/run") == "workflows/me/flow"
    assert split_id("fal-ai/veo3/abc") == ("fal-ai/veo3", "abc")
    assert split_id("fal-ai/veo3/fast/abc") is None  # a subpath is never part of the id
    assert split_id("abc") is None


def test_requests_map_to_fal_inputs_with_string_durations() -> None:
    veo = normalize(
        VideoRequest(model="veo-3.0-generate-001", prompt="a bay", duration=6, size=(720, 1280)),
        CAPS["veo-3.0-generate-001"],
    )
    assert models.endpoint_of(veo) == "fal-ai/veo3"
    assert models.model_input(veo) == {
        "prompt": "a bay",
        "duration": "6s",
        "resolution": "720p",
        "aspect_ratio": "9:16",
    }
    hailuo = normalize(
        VideoRequest(model="MiniMax-Hailuo-02", prompt="a bay", metadata={"resolution": "1080P"}),
        CAPS["MiniMax-Hailuo-02"],
    )
    assert models.endpoint_of(hailuo) == "fal-ai/minimax/hailuo-02/pro/text-to-video"
    assert models.model_input(hailuo) == {"prompt": "a bay"}  # pro: 6 s, no duration field
    with pytest.raises(InvalidRequest, match="6 seconds at 1080P"):
        normalize(
            VideoRequest(
                model="MiniMax-Hailuo-02", prompt="x", duration=10, metadata={"resolution": "1080P"}
            ),
            CAPS["MiniMax-Hailuo-02"],
        )
    with pytest.raises(InvalidRequest, match="one of 5, 10"):
        normalize(
            VideoRequest(model="kling-v2-1-master", prompt="x", duration=7),
            CAPS["kling-v2-1-master"],
        )
    kling = normalize(
        VideoRequest(model="kling-v2-1-master", prompt="x", images=("https://i.test/a.png",)),
        CAPS["kling-v2-1-master"],
    )
    assert models.endpoint_of(kling) == "fal-ai/kling-video/v2.1/master/image-to-video"
    assert models.model_input(kling) == {
        "prompt": "x",
        "duration": "5",
        "image_url": "https://i.test/a.png",
    }


def test_seedance_from_its_ark_home_fits_fal_unless_it_uses_what_fal_lacks() -> None:
    ark = next(c for c in ark_models.capabilities() if c.name == SEEDANCE)
    plain = normalize(
        VideoRequest(model=SEEDANCE, prompt="x", metadata={"camera_fixed": True}), ark
    )
    assert fits(plain, CAPS[SEEDANCE]) is None
    assert models.model_input(plain) == {
        "prompt": "x",
        "duration": "5",
        "camera_fixed": True,
        "resolution": "1080p",
        "aspect_ratio": "16:9",
    }
    marked = normalize(VideoRequest(model=SEEDANCE, prompt="x", metadata={"watermark": True}), ark)
    assert fits(marked, CAPS[SEEDANCE]) == "it has no option 'watermark'"
    adaptive = normalize(
        VideoRequest(model=SEEDANCE, prompt="x", metadata={"ratio": "adaptive"}), ark
    )
    assert fits(adaptive, CAPS[SEEDANCE]) is not None


def test_completed_with_an_error_is_a_failure_and_errors_keep_their_codes() -> None:
    queued = observe({"status": "IN_QUEUE", "queue_position": 3}, None)
    assert queued is not None
    assert (queued.state, queued.extra) == (UpstreamState.QUEUED, {"queue_position": 3})
    failed = observe({"status": "COMPLETED", "error": "Invalid status code: 500"}, None)
    assert failed is not None
    assert (failed.state, failed.error_code) == (UpstreamState.FAILED, "upstream_failed")
    flagged = observe(
        {"status": "COMPLETED", "error": "x", "error_type": "content_policy_violation"}, None
    )
    assert flagged is not None
    assert flagged.error_code == "content_moderation"
    late = observe({"status": "COMPLETED", "error": "x", "error_type": "request_timeout"}, None)
    assert late is not None
    assert late.state is UpstreamState.EXPIRED
    done = observe({"status": "COMPLETED"}, {"video": {"url": "https://v/x.mp4", "duration": 5}})
    assert done is not None
    assert (done.state, done.video_url, done.usage_seconds) == (
        UpstreamState.SUCCEEDED,
        "https://v/x.mp4",
        5.0,
    )
    assert observe({"status": "PAUSED"}, None) is None

    def err(status: int, body: object, **headers: str) -> str:
        return error_of(Answer(status, body, httpx.Headers(headers))).code

    echoed = {"detail": [{"type": "value_error", "msg": "bad", "input": "secret prompt"}]}
    assert err(422, echoed) == "invalid_parameter"
    assert "secret prompt" not in error_of(Answer(422, echoed, httpx.Headers())).message
    policy = {"detail": [{"type": "content_policy_violation", "msg": "no"}]}
    assert err(422, policy) == "content_moderation"
    assert err(401, {"detail": "no"}) == "upstream_auth_failed"
    assert err(403, {"detail": "locked"}) == "upstream_account_error"
    assert err(404, {"detail": "gone"}) == "upstream_model_unavailable"
    assert err(429, {"detail": "slow"}, **{"retry-after": "7"}) == "upstream_rate_limited"
    assert err(504, {"detail": "t", "error_type": "request_timeout"}) == "upstream_timeout"
    assert err(503, {"detail": "x", "error_type": "runner_scheduling_failure"}) == (
        "upstream_unavailable"
    )
    assert json.dumps(echoed)  # the body itself is untouched
