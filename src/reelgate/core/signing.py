"""Signed, expiring links: an HMAC-SHA256 over the path and the expiry time.

Links are bucketed (the expiry is rounded up) so the same file yields the same URL for a while,
which keeps responses cacheable and ETags stable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from urllib.parse import quote

from reelgate.core.errors import NotFound, PermissionDenied


def _mac(key: bytes, path: str, expires: int) -> str:
    digest = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry_for(now: float, ttl: int, bucket: int) -> int:
    """An expiry at least ``ttl`` seconds away, rounded up to a multiple of ``bucket``."""
    bucket = max(1, bucket)
    return int(math.ceil((now + ttl) / bucket) * bucket)


def sign_path(key: bytes, path: str, expires: int) -> str:
    """``path?expires=…&sig=…`` for a path that starts with ``/``."""
    return f"{quote(path)}?expires={expires}&sig={_mac(key, path, expires)}"


def verify(key: bytes, path: str, expires: str | None, sig: str | None, now: float) -> None:
    """Raise unless ``sig`` is a valid, unexpired signature of ``path``.

    A tampered or absent signature is indistinguishable from an unknown file (404), so links
    cannot be probed; an expired but genuine one says so (403 ``link_expired``).
    """
    if not expires or not sig or not expires.isdecimal():
        raise NotFound("no such file", code="file_not_found")
    if not hmac.compare_digest(_mac(key, path, int(expires)), sig):
        raise NotFound("no such file", code="file_not_found")
    if int(expires) < now:
        raise PermissionDenied(
            "this link has expired; fetch the task again for a fresh one", code="link_expired"
        )
