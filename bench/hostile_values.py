"""The values of the hostile corpus (issue #16): what an attacker sends and no schema allows, as
Hypothesis strategies, one family each.

Every strategy draws ``(kind, value)``: the kind names the family (``surrogate``, ``huge-int``,
``url-port``…) so that the runner reports failures by class, not by example. JSON values that
``json.dumps`` cannot write (raw invalid UTF-8, numbers of ten thousand digits, ``1e999``, nesting
a million deep) are ``Raw`` fragments sent as those very bytes; a Python string with a lone
surrogate is written as its ``\\udfff`` escape, as a JSON client would. Header values, path
segments and query values are bytes: the wire is where the attacker works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

Drawn = tuple[str, Any]  # (kind, value)


@dataclass(frozen=True)
class Raw:
    """A JSON fragment sent as these exact bytes."""

    data: bytes


def to_json(value: Any) -> bytes:
    """``value`` as JSON bytes, ``Raw`` fragments inlined; lone surrogates as ``\\u`` escapes."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        items = (to_json(str(k)) + b":" + to_json(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(to_json(v) for v in value) + b"]"
    return json.dumps(value, allow_nan=True).encode()


def family(kind: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Drawn]:
    return st.tuples(st.just(kind), strategy)


def _one_of(kind: str, values: list[Any]) -> st.SearchStrategy[Drawn]:
    return family(kind, st.sampled_from(values))


def _around(middle: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``middle`` between two short printable strings."""
    return st.tuples(_plain, middle, _plain).map("".join)


# -- text -----------------------------------------------------------------------------------------
_plain = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_surrogates = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)
# C0 and C1 controls, DEL, and the invisible or reordering characters a reader never sees.
_CONTROL_CHARS = [chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x85)] + [
    "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\ufffe", "\uffff", "\U0010ffff",
]  # fmt: skip
_controls = st.text(st.sampled_from(_CONTROL_CHARS), min_size=1, max_size=4)
_UNICODE = [
    "\u00e9", "\u65e5\u672c\u8a9e", "\U0001f600", "\u0301\u0301\u0301", "\ufdfa",
    "\u0661\u0662\u0663", "\uff11\uff12\uff13", "\u0130", "\u00df", "\U0001f3f4\U000e0067",
]  # fmt: skip
# Inside a JSON string: bytes that are not UTF-8 (a lone surrogate encoded as UTF-8 among them).
BAD_UTF8 = (
    b"\xff \xfe\xff \x80 \xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xed\xbf\xbf \xe2\x82 "
    b"\xf4\x90\x80\x80 \xf8\x88\x80\x80\x80"
).split()


def long_text(limit: int) -> st.SearchStrategy[str]:
    """Strings from a few hundred bytes to just over the body limit."""
    sizes = st.sampled_from([257, 1025, 4097, 65_537, limit // 2, limit + 1])
    unit = st.sampled_from(["x", "\u00e9", "\x00", "\U0001f600"])
    return st.tuples(unit, sizes).map(lambda p: p[0] * max(1, p[1] // len(p[0].encode())))


def texts(limit: int) -> st.SearchStrategy[Drawn]:
    """Strings that must be refused or kept as they are, never crash anything."""
    bad_bytes = st.tuples(_plain, st.sampled_from(BAD_UTF8))
    return st.one_of(
        family("surrogate", _around(_surrogates)),
        family("control", _around(_controls)),
        family("non-ascii", _around(st.sampled_from(_UNICODE))),
        family("invalid-utf8", bad_bytes.map(lambda p: Raw(b'"' + p[0].encode() + p[1] + b'"'))),
        family("long-text", long_text(limit)),
        _one_of("empty", ["", " ", "\t\n"]),
    )


# -- numbers --------------------------------------------------------------------------------------
_digits = st.integers(min_value=20, max_value=12_000).map(lambda n: "9" * n)
HUGE_INTS = st.tuples(st.sampled_from(["", "-"]), _digits).map(
    lambda p: Raw(f"{p[0]}{p[1]}".encode())
)
# Beyond every column type (int32, int64, uint64) and at their edges.
EDGE_INTS = [2**31, 2**31 - 1, -(2**31) - 1, 2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**18, -1, 0]
# Numbers JSON cannot mean (Python's json reads them), and finite ones at a float's edges.
NON_FINITE = [Raw(b) for b in b"NaN Infinity -Infinity 1e999 -1e999 1E400".split()]
NON_FINITE.append(Raw(b"1.7976931348623157e309"))
FLOAT_EDGES = [Raw(b) for b in b"-0 -0.0 1e-999 5e-324 0.1e1".split()]
FLOAT_EDGES.append(Raw(b"1" + b"0" * 400 + b".5"))
_ODD_NUMBERS = "--5 -5 +5 5. .5 0x1f 1_000 1e3 1e999 -1e999 NaN nan inf -inf Infinity -0 5,5 0b1"
NUMERIC_STRINGS = st.one_of(
    st.sampled_from(
        [
            *_ODD_NUMBERS.split(),
            *[" 5 ", "5 5", "5\x00", "", "0" * 500 + "1", "\u00b2", "\u066b5"],
            *["\u0661\u0662\u0663", "\uff11\uff12\uff13"],  # digits int() reads, a column may not
        ]
    ),
    st.tuples(st.sampled_from(["", "-", "+"]), _digits).map("".join),
)


def numbers() -> st.SearchStrategy[Drawn]:
    """JSON numbers and number-like strings: huge, signed, not finite, malformed."""
    return st.one_of(
        family("huge-int", HUGE_INTS),
        _one_of("edge-int", EDGE_INTS),
        _one_of("non-finite", NON_FINITE),
        _one_of("float-edge", FLOAT_EDGES),
        family("numeric-string", NUMERIC_STRINGS),
        family("float", st.floats(allow_nan=False, allow_infinity=False)),
    )


# -- URLs -----------------------------------------------------------------------------------------
_L63 = "a" * 63
URLS: dict[str, list[str]] = {
    "url-no-host": ["http://", "http:///path", "http://:80/", "https://?x", "http://@/"],
    "url-port": [
        "http://127.0.0.1:0/", "http://127.0.0.1:99999/", "http://127.0.0.1:-1/",
        "http://127.0.0.1:port/", "https://example.com:65536/x.png",
        "http://127.0.0.1:" + "9" * 5000 + "/",
    ],
    "url-label": [
        f"http://{_L63}a.example.com/x.png", "http://" + ".".join([_L63] * 5) + ".com/",
        "http://" + "a" * 300 + "/", "http://a..b/",
    ],
    "url-ipv6": [
        "http://[fe80::1%25eth0]/x.png", "http://[fe80::1%eth0]/", "http://[::1", "http://[::1]]/",
        "http://[::ffff:127.0.0.1]/", "http://[v1.fe]/", "http://[" + "f" * 60 + "]/",
    ],
    "url-unicode": [
        "http://ex\u00e4mple.com/x.png", "http://\u4f8b\u3048.\u30c6\u30b9\u30c8/",
        "http://example\u3002com/", "http://xn--/", "http://xn--zz-\udfff.com/",
        "http://\u202eexample.com/",
    ],
    "url-userinfo": [
        "http://user:pass@127.0.0.1:1/", "http://a@b@c/", "http://" + "u" * 5000 + "@example.com/",
    ],
    "url-scheme": [
        "ftp://example.com/x", "javascript:alert(1)", "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO", "//example.com/x", "data:", "data:image/png;base64,@@@",
        "data:image/png;base64," + "A" * 10_001, "HTTP://EXAMPLE.COM/",
    ],
    "url-address": [
        "http://0x7f.1/", "http://2130706433/", "http://0/", "http://[::]/", "http://127.1/",
        "http://169.254.169.254/", "http://1.1.1.1.1/",
    ],
    "url-control": [
        "http://exa\x00mple.com/", "http://example.com/\r\nX: y", "http://example.com/\udfff",
        " http://example.com/",
    ],
    "url-long": ["http://example.com/" + "a" * 100_000],
}  # fmt: skip
_host = st.text(st.characters(codec="utf-8"), min_size=1, max_size=70)
_suffix = st.sampled_from(["", ":0", ":80", "/x.png"])


def urls() -> st.SearchStrategy[Drawn]:
    fuzzed = st.tuples(_host, _suffix).map(lambda p: f"http://{p[0]}{p[1]}")
    listed = [_one_of(kind, values) for kind, values in URLS.items()]
    return st.one_of(*listed, family("url-fuzzed", fuzzed))


# -- types and structure --------------------------------------------------------------------------
def wrong_types(original: Any) -> st.SearchStrategy[Drawn]:
    """Values of another JSON type than ``original`` (lists where strings go, and vice versa)."""
    candidates: list[Any] = [
        [], [original], [[original]], {}, {"x": original}, None, True, False, 0, -1, 1.5, "x",
        [None], [{}], ["x", 1, None],
    ]  # fmt: skip
    return _one_of("wrong-type", [c for c in candidates if type(c) is not type(original)] or [None])


def structures(limit: int) -> st.SearchStrategy[Drawn]:
    """Deep and wide JSON, within the body limit and beyond it."""
    depth = st.sampled_from([64, 1_000, 100_000, limit // 3, limit])
    width = st.sampled_from([1_000, 100_000, limit // 4, limit // 2 + 1])
    keys = width.map(lambda n: b",".join(b'"k%d":0' % i for i in range(n // 8)))
    return st.one_of(
        family("deep-array", depth.map(lambda n: Raw(b"[" * (n // 2) + b"]" * (n // 2)))),
        family(
            "deep-object", depth.map(lambda n: Raw(b'{"a":' * (n // 6) + b"1" + b"}" * (n // 6)))
        ),
        family("deep-unclosed", depth.map(lambda n: Raw(b"[" * n))),
        family("wide-array", width.map(lambda n: Raw(b"[" + b"0," * (n // 2) + b"0]"))),
        family("wide-object", keys.map(lambda k: Raw(b"{" + k + b"}"))),
        _one_of("duplicate-keys", [Raw(b'{"a":1,"a":"x","a":[],"a":null}')]),
    )


def json_values(original: Any, limit: int) -> st.SearchStrategy[Drawn]:
    """What may stand where ``original`` stood in a JSON body: every family, the ones of its own
    type twice as often (URLs where a URL was, numbers where a number was)."""
    families = [texts(limit), numbers(), urls(), wrong_types(original), structures(limit)]
    if isinstance(original, str) and original.startswith(("http", "data:")):
        families.append(urls())
    elif isinstance(original, str):
        families.append(texts(limit))
    elif isinstance(original, int | float) and not isinstance(original, bool):
        families.append(numbers())
    return st.one_of(families)


NOT_JSON = [
    b"", b" ", b"{", b'{"a":', b"}", b"nul", b"'x'", b"{'a': 1}", b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00", b"{}garbage", b"{}{}", b"\x00", b'{"a":1,}', b"[1,]", b'{"a" 1}',
    b'{"\\ud800": 1}', b'{"a": "\\u12"}', b'"\\', b"--5", b"--boundary\r\n\r\n",
]  # fmt: skip


def whole_bodies(limit: int) -> st.SearchStrategy[Drawn]:
    """Bodies that are not a JSON object at all, or not one a parser survives."""
    return st.one_of(
        _one_of("not-json", NOT_JSON),
        _one_of("json-scalar", b'null [] 1 "x" true NaN 1e999 -Infinity'.split()),
        _one_of("invalid-utf8", [b'{"prompt": "' + b + b'"}' for b in BAD_UTF8]),
        structures(limit).map(lambda d: (d[0], d[1].data)),
    )


# -- the wire: headers, path segments, query values -----------------------------------------------
def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


HEADER_BYTES = st.one_of(
    _one_of("non-ascii", [_utf8("\u00e9"), b"\xe9", _utf8("\U0001f600"), b"\xed\xbf\xbf", b"\xff"]),
    family("overlong", st.sampled_from([257, 1025, 8193, 65_537]).map(lambda n: b"a" * n)),
    _one_of("control", [b"\x01", b"\x7f", b"\x0b", b"\x1b[31m", b"a\x00b"]),
    _one_of("empty", [b""]),
    family("numeric-string", NUMERIC_STRINGS.map(_utf8)),
)  # fmt: skip


def _wrap(prefix: bytes, suffix: bytes = b"") -> st.SearchStrategy[Drawn]:
    return HEADER_BYTES.map(lambda d: (d[0], prefix + d[1] + suffix))


_NINES = b"9" * 5000
_RANGES = b"bytes=5-1 bytes=0-0,1-1 bytes=--5 bytes= items=0-1 bytes=-0"
# Structured headers: the hostile part where the header's own grammar puts a value.
HEADER_SHAPES: dict[str, list[st.SearchStrategy[Drawn]]] = {
    "authorization": [
        _wrap(b"Bearer "), _wrap(b"Basic "), _wrap(b"bearer  ", b" x"),
        _one_of("scheme-only", [b"Bearer", b"Bearer ", b"Token x"]),
    ],
    "if-none-match": [_wrap(b'"', b'.x"'), _wrap(b'W/"', b'"'), _one_of("etag", [b"*", b'"'])],
    "range": [
        _wrap(b"bytes="), _wrap(b"bytes=0-"), _wrap(b"bytes=-"), _wrap(b"bytes=", b"-1"),
        _one_of("range", [*_RANGES.split(), b"bytes=0-" + _NINES, b"bytes=" + _NINES + b"-"]),
    ],
    "prefer": [
        _wrap(b"wait="), _wrap(b"respond-async, wait="), _one_of("prefer", [b"wait", b"wait=="]),
    ],
    "content-type": [
        _one_of("content-type", [
            b"application/json; charset=utf-16", b"multipart/form-data", b"text/plain",
            b"multipart/form-data; boundary=", b"multipart/form-data; boundary=" + b"b" * 5000,
            b"application/x-www-form-urlencoded", b"application/\xff", b"application/json\x00",
            b"*/*", b"application/merge-patch+json",
        ]),
    ],
}  # fmt: skip


def header_values(name: str) -> st.SearchStrategy[Drawn]:
    return st.one_of(HEADER_BYTES, *HEADER_SHAPES.get(name.lower(), []))


def encode(text: str) -> bytes:
    """Percent-encoded UTF-8 (a lone surrogate as the three bytes it would have)."""
    return quote(_utf8(text), safe="").encode()


SEGMENTS = (
    b"%ED%BF%BF %ED%A0%80 %00 %FF %C0%AF % %zz %2 .. %2e%2e%2f%2e%2e %2F a%2Fb %0d%0aX:y %20 + ~ "
    b"a;b \xff \xed\xbf\xbf %E2%80%AE"
).split()


def segments(limit: int) -> st.SearchStrategy[Drawn]:
    """Path segments: bad escapes, encoded surrogates and NUL, traversal, huge numbers, length."""
    encodable = texts(min(limit, 70_000)).filter(lambda d: isinstance(d[1], str))
    return st.one_of(
        _one_of("segment", SEGMENTS),
        encodable.map(lambda d: (d[0], encode(d[1]))),
        family("numeric-string", NUMERIC_STRINGS.map(encode)),
        family("overlong", st.sampled_from([300, 4_097, 70_000]).map(lambda n: b"9" * n)),
    )


def query_values(limit: int) -> st.SearchStrategy[Drawn]:
    """Query values: numbers of every bad shape, text families, bad escapes."""
    return st.one_of(
        family("numeric-string", NUMERIC_STRINGS.map(encode)),
        family("huge-int", _digits.map(str.encode)),
        _one_of("non-finite", b"1e999 NaN -Infinity inf".split()),
        _one_of("float-edge", b"1e-999 -0 5e-324".split()),
        segments(limit),
    )


# -- one value per family: the sweep ------------------------------------------------------------
# Every field of a kind meets each family at least once, whatever the random part draws.
def text_probes(limit: int) -> list[Drawn]:
    return [
        ("surrogate", "a\udfffb"),
        ("control", "a\x00b\x1b[1m\x7f"),
        ("invalid-utf8", Raw(b'"a\xed\xbf\xbfb\xff"')),
        ("non-ascii", "\u202e\U0001f600\u0301"),
        ("long-text", "x" * (limit + 1)),
    ]


NUMBER_PROBES: list[Drawn] = [
    ("huge-int", Raw(b"9" * 5000)),
    ("huge-int", Raw(b"-" + b"9" * 25)),
    ("edge-int", 2**63),
    ("non-finite", Raw(b"NaN")),
    ("non-finite", Raw(b"1e999")),
    ("numeric-string", "--5"),
]
URL_PROBES: list[Drawn] = [(kind, values[0]) for kind, values in URLS.items()]
OTHER_PROBES: list[Drawn] = [("surrogate", "a\udfffb"), ("huge-int", Raw(b"9" * 5000))]
WIRE_PROBES: list[Drawn] = [
    ("huge-int", b"9" * 5000),
    ("numeric-string", b"--5"),
    ("surrogate", b"%ED%BF%BF"),
    ("control", b"%00"),
]
# Where a header's grammar puts its value (the rest of it stays well-formed).
HEADER_FORMS = {
    "range": (b"bytes=", b"-"),
    "if-none-match": (b'"', b'"'),
    "prefer": (b"wait=", b""),
    "authorization": (b"Bearer ", b""),
}
_HEADER_PROBES = [
    ("huge-int", b"9" * 5000),
    ("numeric-string", b"--5"),
    ("non-ascii", _utf8("\u00e9")),
    ("surrogate", b"\xed\xbf\xbf"),
]


def header_probes(name: str) -> list[Drawn]:
    before, after = HEADER_FORMS.get(name.lower(), (b"", b""))
    return [(kind, before + value + after) for kind, value in _HEADER_PROBES]


def body_probes(original: Any, limit: int) -> list[Drawn]:
    """The sweep's values for a body field, by what the example has there, and another JSON
    type (a list where a string goes, a string where a list or an object goes)."""
    other: Drawn = ("wrong-type", [original] if isinstance(original, str | int | float) else "x")
    if isinstance(original, str) and original.startswith(("http", "data:")):
        return [*URL_PROBES, other]
    if isinstance(original, str):
        return [*(text_probes(limit) if " " in original else text_probes(limit)[:2]), other]
    if isinstance(original, int | float) and not isinstance(original, bool):
        return [*NUMBER_PROBES, other]
    if original is None:
        return OTHER_PROBES
    return [other]


def structure_probes(limit: int) -> list[Drawn]:
    """Whole bodies: nesting as deep as the body limit allows, and wider than it."""
    depth = limit // 2 - 16
    return [
        ("deep-array", b"[" * depth + b"]" * depth),
        ("deep-object", b'{"a":' * (depth // 3) + b"1" + b"}" * (depth // 3)),
        ("wide-array", b"[" + b"0," * (limit // 2) + b"0]"),
    ]
