"""Secrets at rest: upstream keys kept in the database are encrypted with a key from settings.

``SecretBox`` wraps Fernet (AES-128-CBC + HMAC-SHA256, authenticated). The operator's
``REELGATE_ENCRYPTION_KEY`` may be any long string: HKDF-SHA256 turns it into the Fernet key, so a
passphrase works as well as ``Fernet.generate_key()`` output. A database copied without that
setting holds no usable upstream key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reelgate.core.errors import ConfigError

_INFO = b"reelgate channel keys v1"
MIN_KEY_CHARS = 16


class SecretBox:
    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError(
                f"invalid setting REELGATE_ENCRYPTION_KEY: use at least {MIN_KEY_CHARS} characters"
            )
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            raise ConfigError(
                "cannot decrypt a stored upstream key: REELGATE_ENCRYPTION_KEY differs from the "
                "one it was stored with"
            ) from None


def fingerprint(secret: str) -> str:
    """A short, non-reversible name for a secret (tells two keys apart without showing them)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]
