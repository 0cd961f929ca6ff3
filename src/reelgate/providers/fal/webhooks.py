"""fal's webhook signatures: Ed25519 over the request id, user id, timestamp and the body's
SHA-256, checked against the keys fal publishes as a JWKS (``shared/spec/providers/fal.md`` §7).

``signed_message`` and ``verify`` are pure; ``KeySet`` keeps the fetched keys (at most a day,
as fal asks) so that a synchronous ``parse_callback`` can verify without I/O, and says when to
fetch them again (a signature no cached key verifies may be signed by a rotated-in key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"
# A signature older or newer than this is refused (a replay, or a clock far off).
TOLERANCE_S = 300.0
# fal asks for its keys to be cached at most a day.
KEYS_TTL_S = 24 * 3600.0
# After a failed verification, fetch the keys again at most this often (a flood of forged
# callbacks must not become a flood of fetches).
REFETCH_S = 30.0

REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()


def parse_jwks(payload: Any) -> list[Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document (others, and malformed ones, are skipped)."""
    keys = payload.get("keys") if isinstance(payload, dict) else None
    found = []
    for jwk in keys if isinstance(keys, list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x.rstrip("=") + "=" * (-len(x.rstrip("=")) % 4))
            found.append(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, binascii.Error):
            continue
    return found


def verify(
    headers: Mapping[str, str], body: bytes, keys: Sequence[Ed25519PublicKey], now: float
) -> str | None:
    """The request id a webhook was signed for, or ``None`` (headers missing, stale, or no key
    verifies the signature). Header names are lower-case."""
    request_id = headers.get(REQUEST_ID, "")
    user_id = headers.get(USER_ID, "")
    timestamp = headers.get(TIMESTAMP, "")
    signature = headers.get(SIGNATURE, "")
    if not (request_id and timestamp and signature) or not timestamp.isdigit():
        return None
    if abs(now - int(timestamp)) > TOLERANCE_S:
        return None
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return None
    message = signed_message(request_id, user_id, timestamp, body)
    for key in keys:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return request_id
    return None


@dataclass
class KeySet:
    """fal's public keys as last fetched."""

    keys: list[Ed25519PublicKey] = field(default_factory=list)
    fetched_at: float | None = None
    wanted_at: float | None = None  # when a failed verification asked for a fresh fetch

    def due(self, now: float) -> bool:
        """Whether the keys should be fetched (never fetched, a day old, or asked for)."""
        if self.fetched_at is None or now - self.fetched_at >= KEYS_TTL_S:
            return True
        return self.wanted_at is not None and now - self.fetched_at >= REFETCH_S

    def replace(self, keys: list[Ed25519PublicKey], now: float) -> None:
        self.keys = keys
        self.fetched_at = now
        self.wanted_at = None


__all__ = ["JWKS_URL", "KeySet", "parse_jwks", "signed_message", "verify"]
