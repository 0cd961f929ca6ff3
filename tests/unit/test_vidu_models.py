"""Vidu's strict normalizer and wire mapping: modes by image count, per-mode durations,
resolutions and options, Vidu's own option names canonicalised, bodies per endpoint, task
objects as observations and Vidu's error bodies as reelgate's codes."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.core.capabilities import ModelCapabilities, NormalizedRequest, normalize
from reelgate.core.channels import Verdict, verdict
from reelgate.core.errors import InvalidRequest, UpstreamUnavailable
from reelgate.core.lifecycle import UpstreamState
from reelgate.core.pricing import PriceTable
from reelgate.core.request import VideoRequest
from reelgate.providers.vidu import models, wire

CAPS = {c.name: c for c in models.capabilities()}
IMG = "https://example.com/a.png"


def norm(model: str, **kwargs: Any) -> NormalizedRequest:
    return normalize(
        VideoRequest(model=model, prompt=kwargs.pop("prompt", "a fox"), **kwargs), CAPS[model]
    )


def refused(model: str, param: str, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        norm(model, **kwargs)
    assert caught.value.param == param, caught.value
    return caught.value


def test_text_to_video_gets_the_models_defaults_and_a_frame() -> None:
    got = norm("viduq2")
    assert (got.duration, got.width, got.height) == (5, 1280, 720)
    assert got.options == {"resolution": "720p", "ratio": "16:9"}
    assert wire.endpoint(got) == "/ent/v2/text2video"


def test_the_image_count_picks_the_endpoint() -> None:
    assert wire.endpoint(norm("viduq2-pro", images=(IMG,))) == "/ent/v2/img2video"
    assert wire.endpoint(norm("viduq2-pro", images=(IMG, IMG))) == "/ent/v2/start-end2video"
    assert wire.endpoint(norm("viduq2", images=(IMG,))) == "/ent/v2/reference2video"
    assert wire.endpoint(norm("viduq1", images=(IMG,) * 3)) == "/ent/v2/reference2video"
    chosen = norm("viduq1", images=(IMG,), metadata={"image_mode": "reference_image"})
    assert wire.endpoint(chosen) == "/ent/v2/reference2video"


def test_durations_and_resolutions_are_per_model_and_mode() -> None:
    refused("viduq2-pro", "duration", images=(IMG, IMG), duration=9)  # start-end: 1-8
    assert norm("viduq2-pro", images=(IMG,), duration=9).duration == 9
    refused("viduq1", "duration", duration=4)
    refused(
        "viduq2-pro-fast", "metadata.resolution", images=(IMG,), metadata={"resolution": "540p"}
    )
    eight = norm("vidu2.0", images=(IMG,), duration=8)
    assert eight.options["resolution"] == "720p"
    refused(
        "vidu2.0",
        "metadata.resolution",
        images=(IMG,),
        duration=8,
        metadata={"resolution": "1080p"},
    )
    assert norm("vidu2.0", images=(IMG,)).options["resolution"] == "360p"


def test_an_option_the_mode_does_not_take_is_refused() -> None:
    err = refused("viduq2", "metadata.style", metadata={"style": "anime"})
    assert err.code == "unsupported_parameter"
    assert norm("viduq1", metadata={"style": "anime"}).options["style"] == "anime"
    refused("viduq2-pro", "metadata.ratio", images=(IMG,), metadata={"ratio": "16:9"})
    refused(
        "viduq2-pro",
        "metadata.generate_audio",
        images=(IMG, IMG),
        metadata={"generate_audio": True},
    )
    refused("viduq3-pro", "metadata.bgm", metadata={"bgm": True})
    refused("viduq2", "metadata.bgm", duration=9, metadata={"bgm": True})


def test_a_size_maps_to_resolution_and_ratio_and_a_first_frame_takes_none() -> None:
    got = norm("viduq2", size=(1080, 1920))
    assert (got.options["resolution"], got.options["ratio"]) == ("1080p", "9:16")
    refused("viduq2", "size", size=(1000, 1000))
    refused("viduq2", "size", size=(1280, 720), metadata={"resolution": "1080p"})
    refused("viduq2-pro", "size", images=(IMG,), size=(1280, 720))


def test_vidus_own_names_are_canonicalised() -> None:
    got = norm("viduq2", metadata={"aspect_ratio": "1:1", "off_peak": True})
    assert got.options["ratio"] == "1:1"
    assert got.options["service_tier"] == "flex"
    assert "off_peak" not in got.options
    refused("viduq2", "metadata.off_peak", metadata={"off_peak": True, "service_tier": "default"})


def test_off_peak_rules() -> None:
    refused("viduq3-turbo", "metadata.service_tier", metadata={"service_tier": "flex"})
    q3 = norm("viduq3-pro", metadata={"service_tier": "flex"})
    assert q3.options["generate_audio"] is True  # Q3 makes audio unless told not to
    refused(
        "viduq2-pro",
        "metadata.service_tier",
        images=(IMG,),
        metadata={"service_tier": "flex", "generate_audio": True},
    )


def test_the_body_uses_vidus_names_and_reelgates_marker() -> None:
    request = norm(
        "viduq2-pro",
        images=(IMG,),
        duration=6,
        metadata={"generate_audio": True, "voice_id": "v1", "seed": 7, "is_rec": True},
    )
    body = wire.build_body(request, task_id="task_abc", callback_url="https://gw/cb")
    assert body == {
        "model": "viduq2-pro",
        "prompt": "a fox",
        "duration": 6,
        "resolution": "720p",
        "payload": "rg-task_abc",
        "images": [IMG],
        "seed": 7,
        "audio": True,
        "voice_id": "v1",
        "is_rec": True,
        "callback_url": "https://gw/cb",
    }
    flex = wire.build_body(norm("viduq2", metadata={"off_peak": True}), task_id="t")
    assert flex["off_peak"] is True
    assert flex["aspect_ratio"] == "16:9"


def test_task_objects_become_observations() -> None:
    done = wire.observe(
        {
            "id": "1",
            "state": "success",
            "credits": 8,
            "creations": [{"url": "https://v/x.mp4", "video": {"duration": 5.04}}],
        }
    )
    assert done is not None
    assert (done.state, done.video_url, done.usage_seconds) == (
        UpstreamState.SUCCEEDED,
        "https://v/x.mp4",
        5.04,
    )
    assert wire.observe({"id": "1", "state": "queueing"}).state is UpstreamState.QUEUED  # type: ignore[union-attr]
    cancelled = wire.observe({"id": "1", "state": "failed", "err_code": "UserCancelled"})
    assert cancelled is not None
    assert cancelled.state is UpstreamState.CANCELLED
    banned = wire.observe({"id": "1", "state": "failed", "err_code": "CreationPolicyViolation"})
    assert banned is not None
    assert (banned.state, banned.error_code) == (UpstreamState.FAILED, "content_moderation")
    assert wire.observe({"id": "1", "state": "scheduled"}) is None


def _err(status: int, reason: str) -> Exception:
    return wire.error_of(status, {"code": status, "reason": reason, "message": "m"})


@pytest.mark.parametrize(
    ("status", "reason", "code", "outcome"),
    [
        (401, "Unauthorized", "upstream_auth_failed", Verdict.DISABLE),
        (400, "CreditInsufficient", "upstream_account_error", Verdict.DISABLE),
        (429, "QuotaExceeded", "upstream_quota_exceeded", Verdict.COOL_DOWN),
        (429, "TooManyRequests", "upstream_rate_limited", Verdict.COOL_DOWN),
        (400, "ModelUnavailable", "upstream_model_unavailable", Verdict.NEXT),
        (500, "InternalServiceFailure", "upstream_unavailable", Verdict.NEXT),
        (400, "OperationInProcess", "upstream_unavailable", Verdict.NEXT),
    ],
)
def test_errors_map_to_codes_whose_verdicts_fit(
    status: int, reason: str, code: str, outcome: Verdict
) -> None:
    err: Any = _err(status, reason)
    assert err.code == code
    assert (
        verdict(code, client_error=False, transient=isinstance(err, UpstreamUnavailable)) is outcome
    )


def test_refused_requests_fail_the_task_with_a_stable_code() -> None:
    assert _err(400, "TaskPromptPolicyViolation").code == "content_moderation"  # type: ignore[attr-defined]
    assert _err(400, "FieldInvalid").code == "invalid_parameter"  # type: ignore[attr-defined]
    assert isinstance(_err(400, "FieldInvalid"), InvalidRequest)


def test_prices_per_second_by_resolution_and_off_peak() -> None:
    table = PriceTable.parse(
        {
            "viduq2": [
                {"per_second": 40},
                {"resolution": "1080p", "per_second": 100},
                {"service_tier": "flex", "per_second": 20},
                {"resolution": "1080p", "service_tier": "flex", "per_second": 50},
            ]
        }
    )
    caps: ModelCapabilities = CAPS["viduq2"]
    charge = table.estimate(
        norm("viduq2", duration=8, metadata={"resolution": "1080p", "off_peak": True}), caps
    )
    assert charge is not None
    assert (charge.quantity, charge.amount) == (8, 400)
    plain = table.estimate(norm("viduq2", duration=4), caps)
    assert plain is not None
    assert plain.amount == 160
