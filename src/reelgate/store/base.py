"""The store interface. One SQL implementation serves SQLite and PostgreSQL; tests may add fakes.

The engine's loops see it through narrow ports (``TaskQueue``, ``DeliveryOutbox``,
``CopyOutbox``, ``RateBuckets``); ``Store`` is all of them and the rest (tokens, channels,
ledger, reads for the API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from reelgate.core.channels import AdmissionCaps, Channel, StoredChannel
from reelgate.core.ids import ApiToken, NewToken
from reelgate.core.lifecycle import Task
from reelgate.core.media import MediaCopy
from reelgate.core.pricing import Balance, Charge
from reelgate.core.webhooks import Attempt, Delivery, Endpoint


class RateBuckets(Protocol):
    async def take_tokens(
        self, key: str, wanted: int, rate: float, burst: float, now: float
    ) -> int:
        """Take up to ``wanted`` tokens from bucket ``key`` (refilled at ``rate`` per second up
        to ``burst``, shared by every process); returns how many were taken."""


class TaskQueue(Protocol):
    """The engine's port to the task queue: leased claims, leases, heartbeats and the durations
    it learns. Changes to tasks go through the service (``EngineWrites``), never through here."""

    async def claim_due(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        """Lease up to ``limit`` submitted, unfinished tasks whose ``next_poll_at`` has come."""

    async def next_due(self, now: float) -> float | None:
        """When the earliest submitted, unfinished task that no live lease holds is due for a
        look (None: no such task); a worker sleeps until then at most."""

    async def claim_admission(
        self,
        provider: str,
        channel: str,
        caps: AdmissionCaps,
        now: float,
        worker: str,
        lease_seconds: float,
        limit: int,
        *,
        models: Sequence[str] | None = None,
    ) -> Sequence[Task]:
        """Lease the oldest unsubmitted tasks ``channel`` has room for under ``caps``, marking
        them as being submitted on it. Returned as they were before (a set
        ``submit_started_at`` means an earlier attempt's outcome is unknown). Only tasks of
        ``models`` (None: any) that did not fail on ``channel`` before are taken."""

    async def claim_overdue(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> Sequence[Task]:
        """Lease unfinished tasks past their deadline."""

    async def has_unsubmitted(self, provider: str, now: float) -> bool: ...

    async def count_unsubmitted(self, now: float, limit: int) -> dict[str, int]:
        """Tasks waiting for admission now per model, counted up to ``limit`` in all."""

    async def worker_seen(self, worker: str, now: float) -> None:
        """Record that ``worker`` is alive at ``now``."""

    async def worker_gone(self, worker: str) -> None:
        """Forget a worker that stopped cleanly."""

    async def extend_leases(self, worker: str, now: float, until: float) -> int:
        """Push back every live lease ``worker`` holds (a heartbeat while it works)."""

    async def hold(self, task_id: str, worker: str, now: float, until: float) -> bool:
        """Renew the lease on one task if ``worker`` still holds it; False once lost."""

    async def release_leases(self, worker: str) -> None:
        """Give back every lease ``worker`` holds (graceful shutdown)."""

    async def typical_durations(self) -> dict[tuple[str, str], float]:
        """(provider, model) → typical seconds from submit to finish."""

    async def learn_durations(
        self, provider: str, model: str, seconds: Sequence[float], now: float
    ) -> None:
        """Fold finished tasks' durations (oldest first) into the model's typical duration."""


class DeliveryOutbox(Protocol):
    """The webhook sender's port: the deliveries the service wrote with a task's end, and the
    endpoints they go to."""

    async def get_task(self, owner_id: str, task_id: str) -> Task | None:
        """A task by (owner, id): another owner's task is indistinguishable from none."""

    async def webhook_endpoint(self, owner_id: str) -> Endpoint | None: ...

    async def ensure_webhook_endpoint(self, owner_id: str, secret: str, now: float) -> Endpoint:
        """The token's endpoint record, created with ``secret`` and no URL if missing."""

    async def update_webhook_endpoint(self, owner_id: str, now: float, **values: Any) -> None: ...

    async def claim_deliveries(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> list[Delivery]: ...

    async def record_attempt(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        state: str,
        next_attempt_at: float,
        payload: str | None,
    ) -> None: ...

    async def settle_delivery(
        self, delivery_id: str, state: str, reason: str, now: float
    ) -> None: ...


class CopyOutbox(Protocol):
    """The media mirror's port: the copy jobs the service wrote with a task's success."""

    async def claim_copies(
        self, now: float, limit: int, worker: str, lease_seconds: float
    ) -> list[MediaCopy]: ...

    async def finish_copy(
        self,
        copy: MediaCopy,
        *,
        state: str,
        now: float,
        name: str | None = None,
        size: int | None = None,
        expires_at: float | None = None,
        next_attempt_at: float | None = None,
        error: str = "",
    ) -> list[MediaCopy]: ...

    async def expire_copies(self, now: float, limit: int) -> list[MediaCopy]: ...


class Store(TaskQueue, DeliveryOutbox, CopyOutbox, RateBuckets, Protocol):
    """Everything reelgate keeps; the engine sees it only through its narrow ports above."""

    async def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent, safe at every start)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    # -- instance metadata -------------------------------------------------------------------
    async def get_or_set_meta(self, key: str, value: str) -> str:
        """The stored value for ``key``, storing ``value`` first if there is none (race-safe)."""

    # -- API tokens ----------------------------------------------------------------------------
    async def create_token(
        self,
        name: str,
        token: NewToken,
        now: int,
        *,
        models: Sequence[str] = (),
        rpm: int | None = None,
        max_concurrent: int | None = None,
    ) -> ApiToken: ...

    async def set_token_limits(self, ref: str, **limits: Any) -> ApiToken | None:
        """Change ``models``, ``rpm`` or ``max_concurrent`` of a token (by id or prefix)."""

    async def rotate_token(self, ref: str, token: NewToken) -> ApiToken | None:
        """A new secret for the same token; the old secret stops working."""

    async def token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    async def list_tokens(self) -> Sequence[ApiToken]: ...

    async def revoke_token(self, ref: str, now: int) -> ApiToken | None:
        """Revoke by id or visible prefix; ``None`` when nothing matches."""

    async def count_active_tokens(self) -> int: ...

    # -- tasks ----------------------------------------------------------------------------------
    async def insert_task(
        self, task: Task, *, max_active: int | None = None, charge: Charge | None = None
    ) -> None:
        """Insert, refusing (429 ``too_many_tasks``) when the owner has ``max_active`` unfinished
        tasks already; with ``charge``, pre-charge it in the same step (402
        ``insufficient_quota`` when the token's quota does not cover it)."""

    async def create_task(
        self,
        task: Task,
        key: str,
        fingerprint: str,
        since: float,
        *,
        max_active: int | None = None,
        charge: Charge | None = None,
    ) -> tuple[Task, bool]:
        """Insert under an idempotency key, or return the task the key made (``created`` False,
        nothing charged again).

        Keys older than ``since`` are forgotten; a key reused with another fingerprint raises
        ``Conflict`` (``idempotency_key_reused``). Concurrent duplicates yield one task.
        """

    async def find_task(self, task_id: str) -> Task | None:
        """A task by id alone: for operators on the host (CLI) and authenticated callbacks."""

    async def list_tasks(
        self,
        owner_id: str,
        *,
        limit: int,
        status: str | None = None,
        model: str | None = None,
        before: tuple[float, str] | None = None,
        oldest_first: bool = False,
    ) -> list[Task]:
        """A token's tasks, newest (or oldest) first by (created at, id); ``before`` pages on."""

    async def usage(
        self, owner_id: str | None, since: int, until: int, group_by: str
    ) -> list[dict[str, Any]]:
        """A token's tasks created in [since, until) counted per ``model``, ``day`` or
        ``token``: tasks, succeeded, failed, cancelled, unfinished, usage_tokens, and from the
        ledger ``charged`` (net) and ``pending`` (held by unfinished tasks)."""

    # -- the ledger (quota and charges) ---------------------------------------------------------
    async def balance(self, owner_id: str) -> Balance:
        """The sum of the token's ledger, and whether its quota is enforced."""

    async def change_quota(
        self,
        ref: str,
        now: float,
        *,
        grant: int | None = None,
        set_to: int | None = None,
        limited: bool | None = None,
        note: str = "",
    ) -> tuple[ApiToken, Balance] | None:
        """Grant, or adjust the balance to ``set_to``, and/or switch enforcement (a grant or a
        set turns it on); ``None`` when no single token matches ``ref``."""

    async def ledger_entries(
        self, owner_id: str | None, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Ledger rows newest first (every token's with ``None``), paged by row id."""

    # -- aggregates for metrics ----------------------------------------------------------------
    async def unfinished_counts(self) -> dict[tuple[str, str, str], int]: ...

    async def unsubmitted_counts(self) -> dict[str, int]: ...

    async def ledger_totals(self) -> dict[str, int]: ...

    # -- readiness -----------------------------------------------------------------------------
    async def last_worker_seen(self) -> float | None:
        """When any worker was last seen alive (None: none ever)."""

    async def schema_is_current(self) -> bool:
        """Whether the database is at the newest migration."""

    # -- channels ------------------------------------------------------------------------------
    async def sync_config_channels(self, channels: Sequence[Channel], now: float) -> None:
        """Record the channels defined in settings (their definition; health is kept)."""

    async def list_channels(self) -> Sequence[StoredChannel]: ...

    async def get_channel(self, name: str) -> StoredChannel | None: ...

    async def add_channel(self, channel: Channel, api_key_enc: str, now: float) -> None:
        """Add a channel managed at run time; ``Conflict`` when the name is taken."""

    async def update_channel(self, name: str, now: float, **fields: Any) -> StoredChannel | None:
        """Change a channel's definition or health fields (columns of ``channels``)."""

    async def delete_channel(self, name: str) -> bool:
        """Remove a channel; ``Conflict`` while unfinished tasks are on it."""

    async def channel_load(self) -> dict[tuple[str, str], dict[str, int]]:
        """Per (provider, channel): unfinished tasks not yet accepted upstream (waiting), queued
        upstream, and running."""

    async def save_task(
        self,
        task: Task,
        expected_version: int,
        *,
        notify: bool = False,
        unleased_at: float | None = None,
        webhook: tuple[str, float] | None = None,
        mirror_at: float | None = None,
        settle_at: float | None = None,
    ) -> bool:
        """Write ``task`` and release its lease, if nobody wrote it meanwhile (optimistic).

        With ``notify`` other processes hear of the change (PostgreSQL NOTIFY at commit). With
        ``unleased_at`` only if no worker holds a lease on it at that instant. With ``webhook``
        (event, now) the outbox rows for the task's end are written in the same transaction; with
        ``mirror_at`` so are the jobs that copy its result files into reelgate's storage; with
        ``settle_at`` its pre-charge is closed (settled to its usage, or refunded), once."""

    async def nudge(self, task_id: str, at: float) -> bool:
        """Bring a submitted, unfinished task's next look forward to ``at``."""

    # -- webhooks (the API's side) -----------------------------------------------------------------
    async def task_deliveries(self, owner_id: str, task_id: str) -> list[Delivery]: ...

    async def replay_delivery(
        self, owner_id: str, task_id: str, delivery_id: str, now: float
    ) -> bool: ...
