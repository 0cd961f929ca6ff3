"""Vidu's callback signature (no I/O): the signing string, the signature, and its verification.

As ``shared/spec/providers/vidu.md`` §7 documents it (its official example is a unit test):

    signing string = METHOD \\n path \\n query \\n access key \\n Date \\n signed headers
    signed headers = for each name in X-HMAC-SIGNED-HEADERS, in order: "Name:value\\n"
    signature      = base64(HMAC-SHA256(the API token that created the task, signing string))

The path and the query are those of the callback URL (an empty path is ``/``, no query is an
empty line), the query kept as it is in the URL (the official example does not sort it). The
body is not signed: a verified callback still only names a task to look up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

ALGORITHM = "hmac-sha256"
ACCESS_KEY = "vidu"
# Headers a signature must cover to mean anything: the time (staleness) and the nonce (replay).
REQUIRED = ("date", "x-request-nonce")
# How far a callback's Date may be from our clock (the replay window clients use, spec §7).
MAX_SKEW_S = 300.0


def signing_string(
    method: str,
    url: str,
    access_key: str,
    date: str,
    signed: Sequence[tuple[str, str]],
) -> str:
    """The string Vidu signs for a request to ``url`` (``signed``: header names as listed in
    X-HMAC-SIGNED-HEADERS, with their values)."""
    parts = urlsplit(url)
    lines = [method.upper(), parts.path or "/", parts.query, access_key, date]
    return "\n".join(lines) + "\n" + "".join(f"{name}:{value}\n" for name, value in signed)


def sign(secret: str, text: str) -> str:
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def http_date(when: float) -> str:
    """``Tue, 06 May 2025 12:09:42 GMT`` for a POSIX time."""
    from datetime import UTC, datetime

    return format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True)


def signed_headers(secret: str, url: str, when: float, nonce: str) -> dict[str, str]:
    """The headers of a callback to ``url`` signed at ``when`` (what Vidu sends; the simulator
    uses it)."""
    date = http_date(when)
    text = signing_string(
        "POST", url, ACCESS_KEY, date, [("Date", date), ("x-request-nonce", nonce)]
    )
    return {
        "Date": date,
        "x-request-nonce": nonce,
        "X-HMAC-SIGNED-HEADERS": "Date;x-request-nonce",
        "X-HMAC-ALGORITHM": ALGORITHM,
        "X-HMAC-ACCESS-KEY": ACCESS_KEY,
        "X-HMAC-SIGNATURE": sign(secret, text),
    }


def verify(
    secret: str, url: str, headers: Mapping[str, str], now: float, method: str = "POST"
) -> str | None:
    """The nonce of a callback whose signature holds and whose Date is fresh; ``None`` for a
    missing, malformed, forged or stale one. ``headers`` have lower-case names."""
    signature = headers.get("x-hmac-signature", "")
    listed = [n.strip() for n in headers.get("x-hmac-signed-headers", "").split(";") if n.strip()]
    if (
        not signature
        or headers.get("x-hmac-algorithm", "").lower() != ALGORITHM
        or headers.get("x-hmac-access-key") != ACCESS_KEY
        or not set(REQUIRED) <= {n.lower() for n in listed}
        or len(listed) > 16
    ):
        return None
    date = headers.get("date", "")
    try:
        sent = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if abs(now - sent) > MAX_SKEW_S:
        return None
    pairs = [(name, headers.get(name.lower(), "")) for name in listed]
    expected = sign(secret, signing_string(method, url, ACCESS_KEY, date, pairs))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    return headers.get("x-request-nonce") or None
