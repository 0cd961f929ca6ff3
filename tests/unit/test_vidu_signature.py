"""Vidu's callback signature: the official example of the spec as a test vector, and
verification (a forged, stale, re-addressed or incomplete signature is no hint)."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

from reelgate.core.lifecycle import Callback
from reelgate.providers.vidu import signature
from reelgate.providers.vidu.provider import ViduProvider

# The spec's official example (shared/spec/providers/vidu.md §7).
EXAMPLE_URL = "http://127.0.0.1:8080/vidu/callback?name=james&age=36"
EXAMPLE_DATE = "Tue, 06 May 2025 12:09:42 GMT"
EXAMPLE_NONCE = "123e4567-e89b-12d3-a456-426614174000"
EXAMPLE_STRING = (
    "POST\n/vidu/callback\nname=james&age=36\nvidu\nTue, 06 May 2025 12:09:42 GMT\n"
    "Date:Tue, 06 May 2025 12:09:42 GMT\nx-request-nonce:123e4567-e89b-12d3-a456-426614174000\n"
)
KEY = "vidu-api-token"
WHEN = parsedate_to_datetime(EXAMPLE_DATE).timestamp()


def test_the_signing_string_is_the_official_example() -> None:
    got = signature.signing_string(
        "POST",
        EXAMPLE_URL,
        "vidu",
        EXAMPLE_DATE,
        [("Date", EXAMPLE_DATE), ("x-request-nonce", EXAMPLE_NONCE)],
    )
    assert got == EXAMPLE_STRING


def test_an_empty_path_signs_as_a_slash_and_no_query_as_an_empty_line() -> None:
    got = signature.signing_string("post", "https://example.com", "vidu", "D", [("Date", "D")])
    assert got == "POST\n/\n\nvidu\nD\nDate:D\n"


def test_the_query_keeps_the_urls_own_order() -> None:
    got = signature.signing_string("POST", "http://h/p?b=2&a=1", "vidu", "D", [])
    assert got.split("\n")[2] == "b=2&a=1"


def test_the_headers_vidu_sends_verify_and_carry_the_official_signing_string() -> None:
    headers = signature.signed_headers(KEY, EXAMPLE_URL, WHEN, EXAMPLE_NONCE)
    assert headers["Date"] == EXAMPLE_DATE
    assert headers["X-HMAC-SIGNATURE"] == signature.sign(KEY, EXAMPLE_STRING)
    lower = {k.lower(): v for k, v in headers.items()}
    assert signature.verify(KEY, EXAMPLE_URL, lower, WHEN) == EXAMPLE_NONCE


def _headers(**changes: str) -> dict[str, str]:
    headers = {
        k.lower(): v
        for k, v in signature.signed_headers(KEY, EXAMPLE_URL, WHEN, EXAMPLE_NONCE).items()
    }
    headers.update(changes)
    return {k: v for k, v in headers.items() if v != "-"}


def test_a_wrong_key_another_url_or_a_changed_header_fails() -> None:
    assert signature.verify("another-key", EXAMPLE_URL, _headers(), WHEN) is None
    other = EXAMPLE_URL.replace("james", "jane")
    assert signature.verify(KEY, other, _headers(), WHEN) is None
    assert signature.verify(KEY, EXAMPLE_URL, _headers(**{"x-request-nonce": "x"}), WHEN) is None
    tampered = _headers(**{"x-hmac-signature": signature.sign(KEY, "something else")})
    assert signature.verify(KEY, EXAMPLE_URL, tampered, WHEN) is None


def test_a_stale_or_future_date_fails_even_when_signed() -> None:
    assert signature.verify(KEY, EXAMPLE_URL, _headers(), WHEN + 301) is None
    assert signature.verify(KEY, EXAMPLE_URL, _headers(), WHEN - 301) is None
    assert signature.verify(KEY, EXAMPLE_URL, _headers(), WHEN + 299) == EXAMPLE_NONCE


def test_a_signature_that_covers_neither_date_nor_nonce_is_refused() -> None:
    date = EXAMPLE_DATE
    text = signature.signing_string("POST", EXAMPLE_URL, "vidu", date, [("Date", date)])
    only_date = _headers(
        **{"x-hmac-signed-headers": "Date", "x-hmac-signature": signature.sign(KEY, text)}
    )
    assert signature.verify(KEY, EXAMPLE_URL, only_date, WHEN) is None
    for name in ("x-hmac-algorithm", "x-hmac-access-key", "x-hmac-signature", "date"):
        assert signature.verify(KEY, EXAMPLE_URL, _headers(**{name: "-"}), WHEN) is None
    assert signature.verify(KEY, EXAMPLE_URL, _headers(date="not a date"), WHEN) is None


def test_the_provider_takes_only_verified_callbacks_as_hints() -> None:
    provider = ViduProvider(KEY, base_url="http://127.0.0.1:9", clock=lambda: WHEN)
    body = json.dumps({"id": "809387572068364288", "state": "success"}).encode()
    hint = provider.parse_callback(Callback(body, _headers(), EXAMPLE_URL))
    assert hint is not None
    assert (hint.upstream_id, hint.final) == ("809387572068364288", True)
    running = json.dumps({"id": "809387572068364288", "state": "processing"}).encode()
    hint = provider.parse_callback(Callback(running, _headers(), EXAMPLE_URL))
    assert hint is not None
    assert not hint.final
    forged = _headers(**{"x-hmac-signature": signature.sign("guess", EXAMPLE_STRING)})
    assert provider.parse_callback(Callback(body, forged, EXAMPLE_URL)) is None
    assert provider.parse_callback(Callback(body, {}, EXAMPLE_URL)) is None
    late = ViduProvider(KEY, base_url="http://127.0.0.1:9", clock=lambda: WHEN + 3600)
    assert late.parse_callback(Callback(body, _headers(), EXAMPLE_URL)) is None
