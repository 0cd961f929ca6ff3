"""Bounded JSON: a body's structure is measured before it is built, then parsed strictly.

``json.loads`` as shipped accepts ``NaN`` and ``Infinity``, numbers of thousands of digits, and
builds whatever structure it is given, however deep or wide: a 31 MB body of small arrays costs
seconds and most of a gigabyte before any check can look at it. ``loads`` first scans the bytes
(C-speed counts, no objects built) and refuses a body that nests deeper than ``MAX_DEPTH``,
holds more than ``MAX_VALUES`` values or spells a number in more than ``MAX_NUMBER_CHARS``
characters; only then does it parse, and every string and number of the result passes
``canonical.tree``. Pure: no I/O (``api.body`` decides to run it off the event loop).
"""

from __future__ import annotations

import json
import re
from typing import Any

from reelgate.core import canonical
from reelgate.core.errors import InvalidRequest

MAX_DEPTH = 32
MAX_VALUES = 10_000
MAX_NUMBER_CHARS = 100

# A JSON string literal (escapes included), unrolled so that a long one is one cheap match.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LONG_NUMBER = re.compile(rb"[0-9.eE+-]{%d,}" % (MAX_NUMBER_CHARS + 1))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def refused(why: str) -> InvalidRequest:
    return InvalidRequest(f"request body is not valid JSON: {why}", code="invalid_json")


def measure(data: bytes) -> None:
    """Refuse ``data`` if its structure exceeds the bounds (its syntax is left to the parser)."""
    skeleton, strings = _STRING.subn(b'""', data, count=MAX_VALUES + 1)
    if strings > MAX_VALUES:
        raise refused(f"it holds more than {MAX_VALUES} values")
    opened = skeleton.count(b"[") + skeleton.count(b"{")
    if opened + skeleton.count(b",") + skeleton.count(b":") > MAX_VALUES:
        raise refused(f"it holds more than {MAX_VALUES} values")
    if _LONG_NUMBER.search(skeleton):
        raise refused(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    if len(brackets) > 2 * opened:
        raise refused("its brackets do not match")
    depth = 0
    for byte in brackets:  # at most 2 * MAX_VALUES bytes
        if byte in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise refused(f"it nests deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1


def _constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity: refused by ``canonical.tree`` with their path


def loads(data: bytes | str, param: str = "") -> Any:
    """The canonical value of a JSON document, or ``InvalidRequest`` (``invalid_json`` for the
    document, ``invalid_parameter`` naming the path of a value that is not canonical)."""
    if isinstance(data, str):
        text, raw = data, data.encode("utf-8", "surrogatepass")
    else:
        raw = data
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise refused(f"it is not UTF-8 (byte {exc.start})") from None
    measure(raw)
    try:
        value = json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise refused(canonical.shown(exc, 200)) from None
    canonical.tree(value, param)
    return value
