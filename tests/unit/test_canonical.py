"""Canonical input: text, integers, numbers, URLs and bounded JSON, checked with the values an
attacker sends (lone surrogates, control characters, huge and signed numbers, NaN, odd URLs),
not only the ones a schema allows. Every refusal is an ``InvalidRequest`` naming the parameter,
never another exception."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelgate.core import canonical, canonical_json
from reelgate.core.canonical import INT32, INT64
from reelgate.core.errors import InvalidRequest

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CONTROLS = st.sampled_from(
    [chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))]
)
# Text with no surrogates and no control characters at all.
PLAIN = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=50)


def outcome(call: Any, *args: Any) -> Any:
    """What ``call`` returns, or the ``InvalidRequest`` it raises (any other error escapes)."""
    try:
        return call(*args)
    except InvalidRequest as exc:
        return exc


def refused(call: Any, *args: Any, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        call(*args, **kwargs)
    assert info.value.http_status == 400
    return info.value


# -- text ----------------------------------------------------------------------------------------
@given(PLAIN, SURROGATES | CONTROLS, PLAIN)
def test_text_with_a_surrogate_or_a_control_character_is_refused(
    before: str, bad: str, after: str
) -> None:
    for multiline in (True, False):
        err = refused(
            canonical.text, before + bad + after, "prompt", max_chars=500, multiline=multiline
        )
        assert (err.code, err.param) == ("invalid_parameter", "prompt")
        assert f"U+{ord(bad):04X}" in err.message


@given(PLAIN.filter(lambda s: s.strip()), st.sampled_from(["\n", "\t", "\r\n", "\r"]), PLAIN)
def test_multiline_text_keeps_tab_and_newline_and_makes_line_ends_canonical(
    before: str, sep: str, after: str
) -> None:
    got = canonical.text(before + sep + after, "prompt", max_chars=500, multiline=True)
    assert "\r" not in got
    assert got == (before + sep.replace("\r\n", "\n").replace("\r", "\n") + after).strip()
    one_line = before + sep + after
    if one_line.strip() != one_line.strip().replace(sep, ""):  # the separator is inside
        refused(canonical.text, one_line, "name", max_chars=500)


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(str.strip))
def test_plain_text_is_accepted_stripped(value: str) -> None:
    assert canonical.text(value, "name", max_chars=10_000) == value.strip()


def test_text_bounds_and_types() -> None:
    assert refused(canonical.text, "x" * 11, "name", max_chars=10).message.endswith(
        "longer than 10 characters"
    )
    assert refused(canonical.text, None, "name", max_chars=10).code == "missing_parameter"
    assert refused(canonical.text, 5, "name", max_chars=10).param == "name"
    assert refused(canonical.text, "  ", "name", max_chars=10).message.endswith("blank")
    assert canonical.text(None, "note", max_chars=5, required=False) == ""


@given(st.text(max_size=300))
def test_token_is_printable_ascii_or_refused(value: str) -> None:
    ok = 1 <= len(value) <= 255 and all(" " <= ch <= "~" for ch in value)
    if ok:
        assert canonical.token(value, "Idempotency-Key") == value
    else:
        assert refused(canonical.token, value, "Idempotency-Key").param == "Idempotency-Key"


@given(st.text())
def test_shown_is_always_printable_and_bounded(value: str) -> None:
    out = canonical.shown(value)
    out.encode("utf-8")  # never a lone surrogate
    assert len(out) <= canonical.MAX_SHOWN_CHARS
    assert canonical.fault(out, multiline=False) is None


# -- numbers -------------------------------------------------------------------------------------
@given(st.integers())
def test_integers_fit_their_range_or_are_refused(value: int) -> None:
    for low, high in (INT64, INT32, (1, 100)):
        if low <= value <= high:
            assert canonical.integer(value, "n", low=low, high=high) == value
            assert canonical.integer(str(value), "n", low=low, high=high) == value
        else:
            refused(canonical.integer, value, "n", low=low, high=high)


@given(st.text(max_size=40))
def test_integer_strings_are_ascii_digits_with_one_sign(raw: str) -> None:
    stripped = raw.strip()
    digits = stripped.lstrip("+-")
    plain = (
        len(stripped) - len(digits) <= 1
        and 1 <= len(digits) <= 19
        and digits.isascii()
        and digits.isdigit()
    )
    err = outcome(canonical.integer, raw, "duration")
    if isinstance(err, InvalidRequest):
        assert err.param == "duration"
        assert not plain or not INT64[0] <= int(stripped) <= INT64[1]
    else:
        assert plain
        assert err == int(stripped)


@pytest.mark.parametrize(
    "value",
    ["--5", "+-5", "5-", "\u0663", "1_000", "1e3", " ", "9" * 5000, "-" + "9" * 20, True],
)
def test_odd_integers_are_refused(value: object) -> None:
    assert refused(canonical.integer, value, "duration").param == "duration"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_finite_and_in_range(value: float) -> None:
    if math.isfinite(value) and -60 <= value <= 60:
        assert canonical.number(value, "wait", low=-60, high=60) == value
    else:
        refused(canonical.number, value, "wait", low=-60, high=60)
    if not (math.isfinite(value) and value.is_integer()):
        refused(canonical.integer, value, "n")


def test_numbers_from_text_and_huge_integers() -> None:
    assert canonical.number("2.5", "wait", low=0, high=60) == 2.5
    for raw in ("nan", "inf", "1e400", "1_0", "\u0663", "9" * 400):
        refused(canonical.number, raw, "wait", low=0, high=60)
    refused(canonical.number, 10**400, "wait", low=0, high=60)  # float() would overflow


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        ("0", 0),
        ("9" * 19, None),  # beyond an INT64
        ("9" * 5000, None),
        ("\u0663", None),
        ("-1", None),
        ("", None),
        (None, None),
    ],
)
def test_digits_of_headers(raw: str | None, expected: int | None) -> None:
    assert canonical.digits(raw) == expected


# -- URLs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "https://example.com/a?b=c",
        "http://127.0.0.1:8080/x",
        "http://[::1]:65535/",
        "https://bücher.example/x",
        "https://example.com./",
        "http://user:pw@example.com/",
        "https://" + ".".join(["a" * 63] * 3) + "/",
    ],
)
def test_urls_that_parse_are_kept_exactly(value: str) -> None:
    assert canonical.url(value, "callback_url") == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:99999999999999999999/", "port"),
        ("http://example.com:abc/", "port"),
        ("http://example.com:\u0663/", "port"),
        ("http://[::1/", "not a valid URL"),
        ("http://[::zz]/", "not a valid URL"),
        ("http://" + "a" * 64 + ".com/", "label"),
        ("http://" + ".".join(["a" * 60] * 5) + "/", "253"),
        ("http://a..b/", "not valid"),
        ("http://999.1.1.1/", "IPv4"),
        ("http://xn--/", "not valid"),
        ("http://\u2603\u2603\u2603" + "\u00e9" * 70 + ".com/", "IDNA"),
        ("ftp://example.com/", "http"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\x00", "control"),
        ("https://example.com/" + "a" * 2048, "longer"),
    ],
)
def test_urls_that_do_not_parse_are_refused(value: str, why: str) -> None:
    err = refused(canonical.url, value, "callback_url")
    assert err.param == "callback_url"
    assert why in err.message


@given(st.text(max_size=80), st.text(max_size=10))
@settings(max_examples=300)
def test_any_host_and_port_is_a_url_or_a_400(host: str, port: str) -> None:
    value = f"http://{host}:{port}/x" if port else f"http://{host}/x"
    err = outcome(canonical.url, value, "url")
    assert err == value or (isinstance(err, InvalidRequest) and err.param == "url")


# -- JSON ----------------------------------------------------------------------------------------
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(*INT64) | FINITE | PLAIN,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(PLAIN, inner, max_size=5),
    max_leaves=40,
)


@given(JSON)
def test_canonical_json_reads_what_json_writes(value: Any) -> None:
    assert canonical_json.loads(json.dumps(value)) == value


@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "replace")))
def test_any_bytes_are_a_value_or_a_400(data: bytes) -> None:
    err = outcome(canonical_json.loads, data)
    if isinstance(err, InvalidRequest):
        assert err.code in ("invalid_json", "invalid_parameter")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"a": NaN}', "a"),
        (b'{"a": [1, Infinity]}', "a[1]"),
        (b'{"a": {"b": -Infinity}}', "a.b"),
        (b'{"a": 1e400}', "a"),
        (b'{"a": 99999999999999999999}', "a"),
        (b'{"a": "\\udfff"}', "a"),
        (b'{"a": ["x\\u0000"]}', "a[0]"),
        (b'{"\\u0000": 1}', "\\u0000"),
        (b'{"' + b"k" * 300 + b'": 1}', "k" * 79 + "\u2026"),
    ],
)
def test_values_that_are_not_canonical_are_named(body: bytes, param: str) -> None:
    err = refused(canonical_json.loads, body)
    assert (err.code, err.param) == ("invalid_parameter", param)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 33 + b"]" * 33, "deeper than 32"),
        (b"[" + b"[]," * 20_000 + b"[]]", "more than 10000 values"),
        (b"[" + b'"a",' * 20_000 + b'"a"]', "more than 10000 values"),
        (b'{"a": ' + b"9" * 5000 + b"}", "longer than 100"),
        (b'{"a": 1.' + b"0" * 200 + b"}", "longer than 100"),
        (b"]]]]", "brackets"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{", "Expecting"),
    ],
)
def test_structure_beyond_the_bounds_is_refused_before_it_is_built(body: bytes, why: str) -> None:
    err = refused(canonical_json.loads, body)
    assert err.code == "invalid_json"
    assert why in err.message


def test_strings_do_not_count_as_structure() -> None:
    prompt = "[{,:" * 2000  # brackets and commas inside a string are text
    assert canonical_json.loads(json.dumps({"prompt": prompt, "n": [1, 2]}))["prompt"] == prompt
    escaped = '"\\' * 100
    assert canonical_json.loads(json.dumps({"p": escaped})) == {"p": escaped}
    deep = "[" * 32 + "]" * 32
    assert canonical_json.loads(deep) is not None
