"""Volcengine's HMAC-SHA256 request signature against the worked examples of its signing
documentation (docs/providers/jimeng.md §2 lists them with their sources), and Jimeng's
strict normalizer and answer mapping."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from reelgate.core.capabilities import normalize
from reelgate.core.errors import InvalidRequest, UpstreamUnavailable
from reelgate.core.lifecycle import UpstreamState
from reelgate.core.request import VideoRequest
from reelgate.providers.jimeng import models, signer
from reelgate.providers.jimeng.provider import _business_error, _observe, split_secret

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# Signing method page (docs 6369/67269): AK AKLTYWVi…, 2025-03-29T18:09:37Z, billing in cn-beijing.
SK_2025 = "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ=="
DATE_2025 = "20250329T180937Z"
# Signing example page (docs 6369/67270; BytePlus' copy too): AK AKLTMjI2…, IAM ListUsers.
SK_2020 = "TnpCak5XWXpZV1U0WkRaaE5ERmxaR0ZpTmpjeVkyUXlZek0wTWpJMU1qWQ=="
DATE_2020 = "20201230T081805Z"


def _vector(
    secret: str, date: str, region: str, service: str, method: str, query: str,
    headers: dict[str, str], body: bytes = b"",
) -> tuple[str, str]:  # fmt: skip
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    canonical = signer.canonical_request(method, "/", pairs, headers, headers, body)  # type: ignore[arg-type]
    import hashlib

    return (
        hashlib.sha256(canonical.encode()).hexdigest(),
        signer.signature(secret, date, region, service, canonical),
    )


def test_the_documented_get_example() -> None:
    headers = {"host": "billing.volcengineapi.com", "x-date": DATE_2025}
    got = _vector(SK_2025, DATE_2025, "cn-beijing", "billing", "GET",
                  "Action=QueryBalanceAcct&Version=2022-01-01", headers)  # fmt: skip
    assert got == (
        "43171c1658c64b5db55c58d54988a4598d2d09a5613136beaa5eef40eae6e2c1",
        "1eda9e7e6b1728151a8e8791fdaf67cfbd28bd5c80d0fce2eb208746cf483105",
    )


def test_the_documented_post_example_with_a_body() -> None:
    headers = {"host": "billing.volcengineapi.com", "x-date": DATE_2025}
    got = _vector(SK_2025, DATE_2025, "cn-beijing", "billing", "POST",
                  "Action=ListBill&Version=2022-01-01", headers,
                  b'{"Limit":10,"BillPeriod":"2023-08"}')  # fmt: skip
    assert got == (
        "27383e3b56d03850f5634483527fbddcbf06cf98de1bc8a6679ef2300bff3b15",
        "5e8480ceea12d0000a23c054151c50dd02c1a7dec835004057d19f13d53a7658",
    )


def test_the_documented_example_with_content_type_and_payload_hash_signed() -> None:
    headers = {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "host": "iam.volcengineapi.com",
        "x-content-sha256": EMPTY,
        "x-date": DATE_2020,
    }
    # Query given out of order: canonicalisation sorts it.
    got = _vector(SK_2020, DATE_2020, "cn-north-1", "iam", "GET",
                  "Version=2018-01-01&Offset=0&Action=ListUsers&Limit=10", headers)  # fmt: skip
    assert got[1] == "28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"


def test_sign_writes_the_authorization_header_the_docs_show() -> None:
    when = calendar.timegm(time.strptime(DATE_2020, "%Y%m%dT%H%M%SZ"))
    headers = signer.sign(
        access_key="AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE",
        secret_key=SK_2020,
        region="cn-north-1",
        service="iam",
        method="GET",
        host="iam.volcengineapi.com",
        path="/",
        query=[
            ("Action", "ListUsers"),
            ("Version", "2018-01-01"),
            ("Limit", "10"),
            ("Offset", "0"),
        ],
        body=b"",
        when=when,
        content_type="application/x-www-form-urlencoded; charset=utf-8",
    )
    assert headers["Authorization"] == (
        "HMAC-SHA256 Credential=AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE/20201230/"
        "cn-north-1/iam/request, SignedHeaders=content-type;host;x-content-sha256;x-date, "
        "Signature=28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"
    )
    auth = signer.parse_authorization(headers["Authorization"])
    assert auth is not None
    lower = {k.lower(): v for k, v in headers.items()}
    query = [("Action", "ListUsers"), ("Version", "2018-01-01"), ("Limit", "10"), ("Offset", "0")]
    ok = {"method": "GET", "path": "/", "query": query, "headers": lower, "body": b""}
    assert signer.matches(auth, SK_2020, **ok)  # type: ignore[arg-type]
    assert not signer.matches(auth, "another secret", **ok)  # type: ignore[arg-type]
    assert not signer.matches(auth, SK_2020, **{**ok, "body": b"{}"})  # type: ignore[arg-type]


def test_the_secret_is_an_access_key_and_a_secret_key() -> None:
    assert split_secret("AK:SK") == ("AK", "SK")
    for bad in ("AKSK", ":SK", "AK:"):
        with pytest.raises(ValueError, match="ACCESS_KEY_ID:SECRET_ACCESS_KEY"):
            split_secret(bad)


# -- models --------------------------------------------------------------------------------
CAPS = {c.name: c for c in models.capabilities()}
IMG = "https://example.com/a.png"


def norm(model: str, **kwargs: Any) -> Any:
    return normalize(VideoRequest(model=model, prompt="a fox", **kwargs), CAPS[model])


def test_the_req_key_follows_the_images() -> None:
    assert models.req_key(norm("jimeng_v30")) == "jimeng_t2v_v30"
    assert models.req_key(norm("jimeng_v30", images=(IMG,))) == "jimeng_i2v_first_v30"
    assert (
        models.req_key(norm("jimeng_v30_1080p", images=(IMG, IMG)))
        == "jimeng_i2v_first_tail_v30_1080"
    )
    assert models.req_key(norm("jimeng_v30_pro", images=(IMG,))) == "jimeng_ti2v_v30_pro"
    with pytest.raises(InvalidRequest):
        norm("jimeng_v30_pro", images=(IMG, IMG))


def test_durations_sizes_and_ratios_are_strict() -> None:
    got = norm("jimeng_v30_pro", size=(2176, 928), duration=10)
    assert (got.options["ratio"], got.duration) == ("21:9", 10)
    for bad in (
        {"duration": 7},
        {"size": (1280, 720)},
        {"images": (IMG,), "metadata": {"ratio": "1:1"}},
    ):
        with pytest.raises(InvalidRequest):
            norm("jimeng_v30_pro", **bad)
    with pytest.raises(InvalidRequest):
        norm("jimeng_v30", images=(IMG, "data:image/png;base64,AAAA"))


def test_answers_become_observations_or_errors() -> None:
    ok: dict[str, Any] = {"code": 10000, "data": {"status": "done", "video_url": "https://v"}}
    seen = _observe(200, ok, "k:1")
    assert seen.state is UpstreamState.SUCCEEDED  # type: ignore[attr-defined]
    assert (
        _observe(200, {"code": 10000, "data": {"status": "in_queue"}}, "k:1").state
        is UpstreamState.QUEUED
    )  # type: ignore[attr-defined]
    assert (
        _observe(200, {"code": 10000, "data": {"status": "expired"}}, "k:1").state
        is UpstreamState.EXPIRED
    )  # type: ignore[attr-defined]
    assert _observe(200, {"code": 10000, "data": {"status": "odd"}}, "k:1") is None
    banned = _observe(
        400, {"code": 50516, "data": None, "message": "Post Video Risk Not Pass"}, "k:1"
    )
    assert banned.error_code == "content_moderation"  # type: ignore[attr-defined]
    failed = _observe(500, {"code": 50500, "data": {"status": "done"}}, "k:1")
    assert (failed.state, failed.error_code) == (UpstreamState.FAILED, "upstream_failed")  # type: ignore[attr-defined]
    with pytest.raises(UpstreamUnavailable):
        _observe(500, {"code": 50500, "data": None}, "k:1")
    busy = _business_error(429, 50430, {"message": "concurrent"})
    assert busy.code == "upstream_quota_exceeded"
    assert _business_error(400, 50412, {}).code == "content_moderation"
