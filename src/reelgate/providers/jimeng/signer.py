"""Volcengine's request signature, HMAC-SHA256 "V4" (no I/O): the canonical request, the
string to sign, the signing key and the ``Authorization`` header, and checking one.

As the signing documentation describes it (``docs/providers/jimeng.md`` §2; its worked examples
are the unit tests' vectors)::

    CanonicalRequest = METHOD \\n URI \\n sorted query \\n "name:value\\n"… \\n name;…
                       \\n hex(sha256(body))
    StringToSign     = "HMAC-SHA256" \\n X-Date \\n YYYYMMDD/region/service/request
                       \\n hex(sha256(CanonicalRequest))
    kSigning         = HMAC(HMAC(HMAC(HMAC(secret, YYYYMMDD), region), service), "request")
    Authorization    = HMAC-SHA256 Credential=AK/scope, SignedHeaders=…,
                       Signature=hex(HMAC(kSigning, StringToSign))
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "HMAC-SHA256"
# What reelgate signs: the headers Volcengine's own SDK signs for a JSON body.
SIGNED = ("content-type", "host", "x-content-sha256", "x-date")
_AUTH = re.compile(
    r"^HMAC-SHA256 Credential=(?P<ak>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def x_date(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Names and values RFC 3986-encoded, sorted by name (a name's values keep their order)."""
    pairs = sorted(((_encode(k), _encode(v)) for k, v in query), key=lambda kv: kv[0])
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Iterable[str],
    body: bytes,
) -> str:
    """``headers`` with lower-case names; ``signed`` the names that take part, in any order."""
    names = sorted(n.lower() for n in signed)
    lines = "".join(f"{n}:{headers.get(n, '').strip()}\n" for n in names)
    return "\n".join(
        [
            method.upper(),
            quote(path or "/", safe="/-_.~"),
            canonical_query(query),
            lines,
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(secret: str, date: str, region: str, service: str, canonical: str) -> str:
    scope = f"{date[:8]}/{region}/{service}/request"
    to_sign = "\n".join([ALGORITHM, date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(secret.encode(), date[:8]), region), service), "request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def sign(
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]],
    body: bytes,
    when: float,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers that sign a request (``Host`` included: it must be sent as signed)."""
    date = x_date(when)
    headers = {
        "content-type": content_type,
        "host": host,
        "x-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-date": date,
    }
    canonical = canonical_request(method, path, query, headers, SIGNED, body)
    sig = signature(secret_key, date, region, service, canonical)
    scope = f"{date[:8]}/{region}/{service}/request"
    return {
        "Content-Type": content_type,
        "Host": host,
        "X-Content-Sha256": headers["x-content-sha256"],
        "X-Date": date,
        "Authorization": f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(SIGNED)}, Signature={sig}",
    }


@dataclass(frozen=True, slots=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    match = _AUTH.match(value.strip())
    if match is None:
        return None
    return Authorization(
        match["ak"],
        match["date"],
        match["region"],
        match["service"],
        tuple(match["headers"].split(";")),
        match["signature"],
    )


def matches(
    auth: Authorization,
    secret_key: str,
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> bool:
    """Whether ``auth`` is the signature of this request under ``secret_key`` (the date,
    scope and signed headers are the caller's to check)."""
    canonical = canonical_request(method, path, query, headers, auth.signed, body)
    expected = signature(
        secret_key, headers.get("x-date", ""), auth.region, auth.service, canonical
    )
    return hmac.compare_digest(expected, auth.signature)
