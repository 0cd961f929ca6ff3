"""Canonical input: the one set of rules every value a client sends passes before it is used.

Pure functions, no I/O. Each takes what arrived (a decoded JSON value, a form field, a query
parameter, a header) and returns the canonical value, or raises ``InvalidRequest`` naming the
parameter. Nothing downstream (the store, an upstream body, an error message) ever sees a value
that has not passed here:

- text: no lone surrogates, no NUL or other control characters (``\\t`` and ``\\n`` only where a
  field takes several lines; ``\\r\\n`` and ``\\r`` become ``\\n``), bounded length;
- integers: ASCII digits, at most 19 of them, within a range that fits the column (BIGINT or
  INTEGER) or the field's own range; numbers: finite;
- URLs: they parse, with an http(s) scheme, a host of at most 253 characters in labels of at
  most 63 (IDNA for non-ASCII names) and a port from 1 to 65535.

Bounded JSON parsing (depth, values, digits) lives in ``canonical_json``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import idna

from reelgate.core.errors import InvalidRequest

INT64 = (-(2**63), 2**63 - 1)  # BIGINT on SQLite and PostgreSQL
INT32 = (-(2**31), 2**31 - 1)  # INTEGER on PostgreSQL
MAX_DIGITS = 19  # an INT64 has at most 19 digits
MAX_URL_CHARS = 2048
MAX_HOST_CHARS = 253
MAX_LABEL_CHARS = 63
MAX_KEY_CHARS = 256  # a JSON object's keys
MAX_TOKEN_CHARS = 255  # Idempotency-Key, X-Client-Request-Id
MAX_SHOWN_CHARS = 80  # how much of a refused value an error message repeats

# What no text may hold: C0 controls other than tab and line ends, DEL, C1 controls, and lone
# surrogates (which no UTF-8 encoder accepts: an upstream body holding one cannot be sent). A
# carriage return is a line end here; ``text`` turns it into a newline.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# A single line also refuses tab and newline.
_BAD_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_INTEGER = re.compile(rf"[+-]?[0-9]{{1,{MAX_DIGITS}}}")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,15}(\.[0-9]{1,15})?")
_TOKEN = re.compile(rf"[\x20-\x7e]{{1,{MAX_TOKEN_CHARS}}}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV4_STYLE = re.compile(r"[0-9]+(?:\.[0-9]+){3}")


def invalid(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {why}", code="invalid_parameter", param=param)


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is required", code="missing_parameter", param=param)


# -- text ----------------------------------------------------------------------------------------
def fault(value: str, *, multiline: bool = True) -> str | None:
    """What makes ``value`` unacceptable as text (None: nothing)."""
    found = (_BAD_TEXT if multiline else _BAD_LINE).search(value)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X})"
    return f"a control character (U+{ord(char):04X})"


def text(
    value: object,
    param: str,
    *,
    max_chars: int,
    multiline: bool = False,
    required: bool = True,
    blank_ok: bool = False,
) -> str:
    """A string field: stripped, line ends canonical, no control characters, bounded length."""
    if value is None:
        if required:
            raise missing(param)
        return ""
    if not isinstance(value, str):
        raise invalid(param, "must be a string")
    if multiline and "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    problem = fault(value, multiline=multiline)
    if problem is not None:
        raise invalid(param, f"must not contain {problem}")
    value = value.strip()
    if not value and not blank_ok:
        raise invalid(param, "must not be blank")
    if len(value) > max_chars:
        raise invalid(param, f"is longer than {max_chars} characters")
    return value


def token(value: str | None, param: str) -> str | None:
    """A client-chosen key sent in a header: 1 to 255 printable ASCII characters, or absent.

    A key that cannot be honoured is refused, never ignored: ignoring it would drop the
    guarantee the client asked for (one task per key)."""
    if value is None:
        return None
    if not _TOKEN.fullmatch(value):
        raise InvalidRequest(
            f"{param} must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters",
            code="invalid_parameter",
            param=param,
        )
    return value


def shown(value: object, limit: int = MAX_SHOWN_CHARS, *, multiline: bool = False) -> str:
    """``value`` as an error message may repeat it: control characters and lone surrogates
    spelled as ``\\uXXXX`` escapes, and cut to ``limit`` characters."""
    bad = _BAD_TEXT if multiline else _BAD_LINE
    out = bad.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))
    return out if len(out) <= limit else out[: limit - 1] + "…"


# -- numbers -------------------------------------------------------------------------------------
def integer(
    value: object,
    param: str,
    *,
    low: int = INT64[0],
    high: int = INT64[1],
    strings: bool = True,
    what: str = "an integer",
) -> int:
    """An integer from a JSON number (whole floats too), or from ASCII digits when ``strings``."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str) and strings:
        raw = value.strip()
        if _INTEGER.fullmatch(raw):
            number = int(raw)
    if number is None:
        raise invalid(param, f"must be {what}")
    if not low <= number <= high:
        raise invalid(param, f"must be {what} from {low} to {high}")
    return number


def query_int(raw: str | None, param: str, *, low: int, high: int, default: int) -> int:
    """A query parameter holding an integer (absent: ``default``)."""
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(
            f"{param} must be an integer from {low} to {high}",
            code="invalid_parameter",
            param=param,
        )
    return int(raw)


def number(value: object, param: str, *, low: float, high: float) -> float:
    """A finite number within [low, high], from JSON or from decimal digits (``1``, ``2.5``)."""
    found: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        found = float(value) if INT64[0] <= value <= INT64[1] else math.inf
    elif isinstance(value, float):
        found = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        found = float(value)
    if found is None or not math.isfinite(found) or not low <= found <= high:
        raise invalid(param, f"must be a number from {low:g} to {high:g}")
    return found


def digits(raw: str | None, *, max_digits: int = MAX_DIGITS) -> int | None:
    """An unsigned INT64 spelled in 1 to ``max_digits`` ASCII digits, else None (for headers such
    as ``If-None-Match`` and ``Last-Event-ID`` where a foreign value simply names nothing)."""
    if raw is None or not 1 <= len(raw) <= max_digits or not raw.isascii() or not raw.isdigit():
        return None
    found = int(raw)
    return found if found <= INT64[1] else None


# -- URLs ----------------------------------------------------------------------------------------
def url(
    value: object,
    param: str,
    *,
    schemes: tuple[str, ...] = ("http", "https"),
    max_chars: int = MAX_URL_CHARS,
) -> str:
    """A URL that parses and names a reachable kind of host, returned exactly as sent (a query
    string may be signed: it is never rewritten)."""
    if not isinstance(value, str) or not value:
        raise invalid(param, "must be a URL string")
    if len(value) > max_chars:
        raise invalid(param, f"is longer than {max_chars} characters")
    if _BAD_LINE.search(value) or any(ch.isspace() for ch in value):
        raise invalid(param, "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise invalid(param, "is not a valid URL") from None
    if parts.scheme.lower() not in schemes:
        raise invalid(param, f"must be an {'/'.join(schemes)} URL")
    if not host:
        raise invalid(param, "has no host")
    _port(parts.netloc, param)
    _host(host, param)
    return value


def _port(netloc: str, param: str) -> None:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        port = hostport.partition("]")[2].removeprefix(":")
    else:
        port = hostport.partition(":")[2]
    if port and (not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535):
        raise invalid(param, "has an invalid port (1 to 65535)")


def _host(host: str, param: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if _IPV4_STYLE.fullmatch(host):
            raise invalid(param, "has an invalid IPv4 address") from None
    else:
        return
    name = host.removesuffix(".")
    if not name.isascii():
        try:  # as httpx encodes it when it connects
            name = idna.encode(name.lower()).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise invalid(param, "has a host name that is not valid (IDNA)") from None
    if len(name) > MAX_HOST_CHARS:
        raise invalid(param, f"has a host name longer than {MAX_HOST_CHARS} characters")
    for label in name.lower().split("."):
        if len(label) > MAX_LABEL_CHARS:
            raise invalid(param, f"has a host label longer than {MAX_LABEL_CHARS} characters")
        if not _LABEL.fullmatch(label):
            raise invalid(param, "has a host name that is not valid")


# -- decoded JSON --------------------------------------------------------------------------------
def tree(value: Any, param: str = "") -> None:
    """Check every string and number inside a decoded body (or ``metadata``): strings are text
    (tab and line ends allowed), keys single lines of at most 256 characters, integers fit an INT64,
    floats are finite. Raises naming the path (``metadata.seed``, ``content[0].text``)."""
    stack: list[tuple[str, Any]] = [(param, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = fault(item, multiline=True)
            if problem is not None:
                raise invalid(where or "body", f"must not contain {problem}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise invalid(where or "body", f"must be an integer from {INT64[0]} to {INT64[1]}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise invalid(where or "body", "must be a finite number (not NaN or Infinity)")
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                name = shown(key)
                usable = isinstance(key, str) and len(key) <= MAX_KEY_CHARS
                if not usable or fault(key, multiline=False):
                    raise InvalidRequest(
                        f"'{name}' is not a usable parameter name",
                        code="invalid_parameter",
                        param=name,
                    )
                stack.append((f"{where}.{key}" if where else key, inner))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", inner) for i, inner in enumerate(item))
