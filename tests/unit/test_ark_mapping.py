"""Unified request → Ark body, Ark task → observation, Ark error → reelgate error (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.core.capabilities import normalize
from reelgate.core.channels import AdmissionCaps
from reelgate.core.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from reelgate.core.lifecycle import UpstreamState
from reelgate.core.request import VideoRequest, parse_seed_body
from reelgate.providers.ark import catalog as ark_catalog
from reelgate.providers.ark import models as ark_models
from reelgate.providers.ark.provider import _error_of, build_body, observe
from reelgate.providers.registry import Registry

CAPS = {n: c for c in ark_models.capabilities() for n in (c.name, *c.aliases)}
PRO = "doubao-seedance-1-0-pro-250528"
V2 = "doubao-seedance-2-0-260128"
LITE_I2V = "doubao-seedance-1-0-lite-i2v-250428"
IMG = "https://example.com/a.png"
IMG2 = "https://example.com/b.png"


def body_for(byteplus: bool = False, **seed: Any) -> dict[str, Any]:
    request = parse_seed_body({"prompt": "a cat", **seed})
    return build_body(normalize(request, CAPS[request.model]), byteplus=byteplus)


def test_text_to_video_with_size_becomes_resolution_and_ratio() -> None:
    assert body_for(model=V2, size="1280x720", duration=5) == {
        "model": V2,
        "content": [{"type": "text", "text": "a cat"}],
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
    }


def test_one_zero_table_and_common_sizes() -> None:
    assert body_for(model=PRO, size="1248x704")["resolution"] == "720p"
    common = body_for(model=PRO, size="1280x720")  # not in 1.0's table, same shape
    assert (common["resolution"], common["ratio"]) == ("720p", "16:9")
    vertical = body_for(model=PRO, size="1088x1920")
    assert (vertical["resolution"], vertical["ratio"]) == ("1080p", "9:16")


def test_defaults_follow_the_spec() -> None:
    pro = body_for(model=PRO)
    assert (pro["resolution"], pro["ratio"], pro["duration"]) == ("1080p", "16:9", 5)
    v2 = body_for(model=V2)
    assert v2["resolution"] == "720p"
    assert "ratio" not in v2  # adaptive is Ark's own default


def test_first_frame_and_first_last_frame_roles() -> None:
    one = body_for(model=PRO, image=IMG)
    assert one["content"][1] == {
        "type": "image_url",
        "image_url": {"url": IMG},
        "role": "first_frame",
    }
    two = body_for(model=PRO, images=[IMG, IMG2])
    assert [c["role"] for c in two["content"][1:]] == ["first_frame", "last_frame"]


def test_reference_images_explicit_or_inferred() -> None:
    three = body_for(model=LITE_I2V, images=[IMG, IMG2, IMG])
    assert [c["role"] for c in three["content"][1:]] == ["reference_image"] * 3
    one_ref = body_for(model=V2, image=IMG, metadata={"image_mode": "reference_image"})
    assert one_ref["content"][1]["role"] == "reference_image"


def test_options_pass_through_and_tools() -> None:
    body = body_for(
        model=V2,
        metadata={
            "seed": 7,
            "watermark": True,
            "return_last_frame": True,
            "execution_expires_after": 3600,
            "generate_audio": False,
            "priority": 3,
            "web_search": True,
            "safety_identifier": "user-1",
        },
    )
    for key, value in (
        ("seed", 7),
        ("watermark", True),
        ("return_last_frame", True),
        ("execution_expires_after", 3600),
        ("generate_audio", False),
        ("priority", 3),
        ("safety_identifier", "user-1"),
    ):
        assert body[key] == value
    assert body["tools"] == [{"type": "web_search"}]


def test_frames_win_over_duration() -> None:
    body = body_for(model=PRO, metadata={"frames": 29})
    assert body["frames"] == 29
    assert "duration" not in body


def test_legacy_prompt_flags_are_lifted_and_checked() -> None:
    body = body_for(model=PRO, prompt="a cat --rs 720p --rt 9:16 --dur 6 --cf true")
    assert body["content"][0]["text"] == "a cat"
    assert (body["resolution"], body["ratio"], body["duration"], body["camera_fixed"]) == (
        "720p",
        "9:16",
        6,
        True,
    )


def test_byteplus_names() -> None:
    assert body_for(model=V2, byteplus=True)["model"] == "dreamina-seedance-2-0-260128"
    alias = body_for(model="seedance-1-0-pro-250528")
    assert alias["model"] == PRO


@pytest.mark.parametrize(
    ("seed", "param"),
    [
        ({"model": PRO, "size": "1000x1000"}, "size"),
        ({"model": "doubao-seedance-2-0-fast-260128", "size": "1920x1080"}, "size"),
        ({"model": PRO, "duration": 13}, "duration"),
        ({"model": PRO, "duration": -1}, "duration"),
        ({"model": V2, "duration": 16}, "duration"),
        ({"model": PRO, "metadata": {"resolution": "4k"}}, "metadata.resolution"),
        ({"model": PRO, "metadata": {"generate_audio": True}}, "metadata.generate_audio"),
        ({"model": V2, "metadata": {"service_tier": "flex"}}, "metadata.service_tier"),
        ({"model": PRO, "metadata": {"frames": 30}}, "metadata.frames"),
        (
            {"model": PRO, "metadata": {"execution_expires_after": 60}},
            "metadata.execution_expires_after",
        ),
        (
            {"model": "doubao-seedance-1-5-pro-251215", "metadata": {"draft": True}},
            "metadata.draft",
        ),
        ({"model": PRO, "prompt": "x --rs 4k"}, "metadata.resolution"),
        ({"model": PRO, "prompt": "x --cf maybe"}, "prompt --camera_fixed"),
        # Found by fuzzing: "²" is a digit to str.isdigit but not to int() (it was a 500).
        ({"model": PRO, "prompt": "x --dur ²"}, "prompt --duration"),
        ({"model": PRO, "duration": "²"}, "duration"),
        ({"model": PRO, "prompt": "x --rs 720p", "size": "1920x1088"}, "size"),
        ({"model": "doubao-seedance-1-0-lite-t2v-250428", "image": IMG}, "image"),
        ({"model": LITE_I2V}, "image"),
        ({"model": "doubao-seedance-1-0-pro-fast-251015", "images": [IMG, IMG2]}, "images"),
        ({"model": LITE_I2V, "images": [IMG] * 5}, "images"),
        ({"model": "doubao-seaweed-241128", "duration": 7}, "duration"),
    ],
)
def test_what_a_model_cannot_do_is_a_400(seed: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        body_for(**{"prompt": "a cat", **seed})
    assert info.value.param == param, info.value.message
    assert info.value.http_status == 400


def test_auto_duration_on_newer_models() -> None:
    assert body_for(model=V2, duration=-1)["duration"] == -1


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", UpstreamState.QUEUED),
        ("running", UpstreamState.RUNNING),
        ("cancelled", UpstreamState.CANCELLED),
        ("expired", UpstreamState.EXPIRED),
    ],
)
def test_observe_every_documented_status(status: str, state: UpstreamState) -> None:
    seen = observe({"id": "cgt-1", "status": status})
    assert seen is not None
    assert seen.state is state


def test_observe_success_and_moderation() -> None:
    ok = observe(
        {
            "id": "cgt-1",
            "status": "succeeded",
            "content": {"video_url": "https://v", "last_frame_url": "https://f"},
            "usage": {"completion_tokens": 108900, "total_tokens": 108900},
        }
    )
    assert ok is not None
    assert (ok.video_url, ok.last_frame_url, ok.usage_tokens) == ("https://v", "https://f", 108900)
    bad = observe(
        {
            "id": "cgt-1",
            "status": "failed",
            "error": {
                "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
                "message": "no",
            },
        }
    )
    assert bad is not None
    assert bad.error_code == "content_moderation"
    assert bad.error_message == "OutputVideoSensitiveContentDetected.PolicyViolation: no"


def test_unknown_status_is_not_shown() -> None:
    assert observe({"id": "cgt-1", "status": "processing"}) is None


@pytest.mark.parametrize(
    ("status", "code", "kind", "ours"),
    [
        (400, "InvalidParameter", InvalidRequest, "invalid_parameter"),
        (400, "InputTextSensitiveContentDetected", InvalidRequest, "content_moderation"),
        (401, "AuthenticationError", UpstreamError, "upstream_auth_failed"),
        (403, "AccountOverdueError", UpstreamError, "upstream_account_error"),
        (404, "InvalidEndpointOrModel.NotFound", UpstreamError, "upstream_model_unavailable"),
        (429, "QuotaExceeded", UpstreamUnavailable, "upstream_quota_exceeded"),
        (
            429,
            "RateLimitExceeded.EndpointRPMExceeded",
            UpstreamUnavailable,
            "upstream_rate_limited",
        ),
        (500, "InternalServiceError", UpstreamUnavailable, "upstream_unavailable"),
    ],
)
def test_errors_translate_at_the_boundary(status: int, code: str, kind: type, ours: str) -> None:
    err = _error_of(status, {"error": {"code": code, "message": "m", "param": "p"}})
    assert isinstance(err, kind)
    assert err.code == ours
    assert code in err.message


def test_unconfigured_seedance_says_how_to_enable_it() -> None:
    registry = Registry([], {"doubao-seedance-2-0-260128": "set REELGATE_ARK_API_KEY"})
    with pytest.raises(InvalidRequest) as info:
        registry.resolve("doubao-seedance-2-0-260128")
    assert info.value.code == "model_not_configured"
    assert "REELGATE_ARK_API_KEY" in info.value.message
    with pytest.raises(InvalidRequest) as unknown:
        registry.resolve("nope")
    assert unknown.value.code == "model_not_found"


def test_every_spec_model_is_offered_under_both_names() -> None:
    for m in ark_catalog.MODELS:
        assert CAPS[m.name] is CAPS[m.byteplus]
    assert normalize(VideoRequest(model=V2, prompt="x"), CAPS[V2]).model == V2


def test_configured_aliases_and_endpoint_ids_resolve_to_models() -> None:
    from reelgate.providers.sandbox.provider import MODELS as SANDBOX

    class Local:
        name = "sandbox"
        channel = "default"
        caps = AdmissionCaps()

        def models(self) -> list[Any]:
            return list(SANDBOX)

    registry = Registry(
        [Local()],  # type: ignore[list-item]
        aliases={"ep-20251201-abcde": "sandbox-t2v", "quick": "sandbox-t2v"},
    )
    assert registry.resolve("ep-20251201-abcde").name == "sandbox-t2v"
    assert registry.resolve("quick").name == "sandbox-t2v"
    with pytest.raises(InvalidRequest):
        registry.resolve("ep-unknown")
