"""Replicate's webhook signatures, which follow Standard Webhooks: an HMAC-SHA256 of
``"{webhook-id}.{webhook-timestamp}.{body}"`` under the account's secret (``whsec_`` + base64),
sent as a space-delimited list of ``v1,<base64>`` in ``webhook-signature``
(``shared/spec/providers/replicate.md`` §7). Pure functions; the provider keeps the secret it
fetched from ``GET /v1/webhooks/default/secret``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

# A signature older or newer than this is refused (a replay, or a clock far off).
TOLERANCE_S = 300.0
# After a failed verification, fetch the secret again at most this often.
REFETCH_S = 30.0
PREFIX = "whsec_"


def secret_key(secret: str) -> bytes | None:
    """The HMAC key of a ``whsec_…`` secret, or None when it is not one."""
    encoded = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded, validate=True) or None
    except (ValueError, binascii.Error):
        return None


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify(headers: Mapping[str, str], body: bytes, key: bytes | None, now: float) -> bool:
    """Whether a delivery is signed with ``key`` within the tolerance (lower-case headers)."""
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    sent = headers.get("webhook-signature", "")
    if key is None or not (webhook_id and timestamp.isdigit() and sent):
        return False
    if abs(now - int(timestamp)) > TOLERANCE_S:
        return False
    expected = signature(key, webhook_id, timestamp, body).encode()
    return any(hmac.compare_digest(expected, given.encode()) for given in sent.split(" "))


__all__ = ["secret_key", "signature", "verify"]
