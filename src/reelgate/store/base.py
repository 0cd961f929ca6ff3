"""The store interface. One SQL implementation serves SQLite and PostgreSQL; tests may add fakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reelgate.core.ids import ApiToken, NewToken
from reelgate.core.lifecycle import Task


class Store(Protocol):
    async def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent, safe at every start)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    # -- instance metadata -------------------------------------------------------------------
    async def get_or_set_meta(self, key: str, value: str) -> str:
        """The stored value for ``key``, storing ``value`` first if there is none (race-safe)."""

    # -- API tokens ----------------------------------------------------------------------------
    async def create_token(self, name: str, token: NewToken, now: int) -> ApiToken: ...

    async def token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    async def list_tokens(self) -> Sequence[ApiToken]: ...

    async def revoke_token(self, ref: str, now: int) -> ApiToken | None:
        """Revoke by id or visible prefix; ``None`` when nothing matches."""

    async def count_active_tokens(self) -> int: ...

    # -- tasks ----------------------------------------------------------------------------------
    async def insert_task(self, task: Task) -> None: ...

    async def get_task(self, owner_id: str, task_id: str) -> Task | None:
        """A task by (owner, id): another owner's task is indistinguishable from none."""

    async def find_task(self, task_id: str) -> Task | None:
        """A task by id alone: for operators on the host (CLI), never for API clients."""

    async def claim_due(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        """Lease up to ``limit`` non-terminal tasks whose ``next_poll_at`` has come."""

    async def save_task(self, task: Task, expected_version: int) -> bool:
        """Write ``task`` (with version+1) and release its lease, if nobody wrote it meanwhile."""

    async def release_leases(self, worker: str) -> None:
        """Give back every lease ``worker`` holds (graceful shutdown)."""
