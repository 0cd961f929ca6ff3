"""Upstream accounts as the engine sees them: how much each may hold and how fast it may be asked.

An account is one set of upstream credentials (an Ark API key, say). Tasks stick to the account
that submitted them; the admission caps below keep reelgate's own queue in front of the
upstream's, instead of letting the upstream refuse work with 429s.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class AdmissionCaps:
    """Limits per upstream account; ``None`` means unlimited."""

    # Tasks waiting in the upstream's own queue (Ark: 120 per account).
    max_queued: int | None = None
    # Tasks queued or running upstream together.
    max_in_flight: int | None = None
    # Upstream requests per minute, shared by every worker (a token bucket in the database).
    rpm: int | None = None

    def bucket_rate(self) -> tuple[float, float] | None:
        """(tokens per second, burst) of the account's request bucket, or None when unlimited."""
        if self.rpm is None:
            return None
        # A burst of a tenth of the minute's budget keeps the rate smooth but lets a tick batch.
        return self.rpm / 60.0, max(1.0, self.rpm / 10.0)
