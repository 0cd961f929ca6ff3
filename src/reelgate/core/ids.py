"""Identifiers and API tokens: random, url-safe, and for tokens stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

TASK_PREFIX = "task_"
TOKEN_PREFIX = "rg_"  # noqa: S105 - a public prefix, not a secret
# How much of a token is kept in clear so people can tell their tokens apart.
TOKEN_VISIBLE_CHARS = 8


def new_task_id() -> str:
    """``task_`` + 32 url-safe random characters (192 bits)."""
    return TASK_PREFIX + secrets.token_urlsafe(24)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(12)


def hash_token(plaintext: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is a safe, fast one-way store."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewToken:
    plaintext: str
    prefix: str
    hash: str


def new_token() -> NewToken:
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(
        plaintext=plaintext,
        prefix=plaintext[: len(TOKEN_PREFIX) + TOKEN_VISIBLE_CHARS],
        hash=hash_token(plaintext),
    )


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored API token: never the plaintext, only its hash and a visible prefix."""

    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None
    # Limits set by the operator: allowed models (empty: all), creates per minute, tasks
    # unfinished at once.
    models: tuple[str, ...] = ()
    rpm: int | None = None
    max_concurrent: int | None = None
    # A quota is set: creates are refused when the balance does not cover their estimate.
    quota_limited: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None
