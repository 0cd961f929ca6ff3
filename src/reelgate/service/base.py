"""What every part of the service shares: its collaborators, caches, reads and the one write.

``ServiceBase._write`` is the only way a task changes: optimistic (by version), then the caches,
waiters and listeners of this process hear of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from reelgate.core import schedule, webhooks
from reelgate.core.cache import TtlCache
from reelgate.core.errors import ConfigError, InvalidRequest, NotFound
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Status, Task
from reelgate.core.pricing import PriceTable
from reelgate.files import MediaRoots
from reelgate.metrics import METRICS
from reelgate.net import Network
from reelgate.providers import plugins
from reelgate.providers.registry import Registry
from reelgate.service.signal import WorkSignal
from reelgate.store.base import RateBuckets, Store

if TYPE_CHECKING:
    from reelgate.service.channels import ChannelBook


log = logging.getLogger("reelgate.service")

# Learned durations kept in memory at most until this many (a worker flushes every round).
LEARN_BATCH = 64


class ServiceBase:
    def __init__(
        self,
        store: Store,
        registry: Registry | None = None,
        *,
        channels: ChannelBook | None = None,
        buckets: RateBuckets | None = None,
        token_cache_ttl: float = 5.0,
        task_cache_ttl: float = 1.0,
        task_cache_size: int = 100_000,
        allow_networks: Sequence[Network] = (),
        max_task_seconds: float = schedule.MAX_TASK_SECONDS,
        mirror_media: bool = False,
        media: MediaRoots | None = None,
        prices: PriceTable | None = None,
        currency: str = "credits",
        typical_seconds: float = schedule.TRACKING.default_typical,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``registry``: a fixed routing table (tests); ``channels``: the channels kept in the
        database, whose registry is rebuilt as they change (a running gateway)."""
        if (registry is None) == (channels is None):
            raise TypeError("give a registry or channels, not both")
        self.store = store
        # Channels kept in the database (``None``: the registry is fixed, e.g. in tests).
        self.channels = channels
        self._registry = registry
        # Shared token buckets (rate limits): the database, or Redis when configured.
        self.buckets: RateBuckets = buckets or store
        # What each model costs (free when absent), under each model's catalogue name.
        self.prices = _canonical(prices or PriceTable(), self.registry)
        self.currency = currency
        self.max_task_seconds = max_task_seconds
        # Copy remote results (upstream URLs that expire) into reelgate's own storage.
        self.mirror_media = mirror_media
        # The files behind ``local://`` references (None: nothing to delete with a task).
        self.media = media
        self.media_due = asyncio.Event()
        self._monotonic = monotonic
        # A waited-on task is re-read at least this often (a change no one announces).
        self.recheck = 1.0
        # What a client's estimate assumes before any task of a model has finished (s).
        self.default_typical = typical_seconds
        # Durations of tasks that ended since the last flush, per (provider, model).
        self._durations: dict[tuple[str, str], list[float]] = {}
        self._typical: dict[tuple[str, str], float] = {}
        self._typical_until = float("-inf")
        self.clock = clock
        self._allow = allow_networks
        self._token_ttl = token_cache_ttl
        self._task_ttl = task_cache_ttl
        self._tokens: TtlCache[str, ApiToken | None] = TtlCache(10_000, monotonic)
        self._tasks: TtlCache[tuple[str, str], Task] = TtlCache(task_cache_size, monotonic)
        self._loading: dict[tuple[str, str], asyncio.Future[Task | None]] = {}
        self._token_loads: dict[str, asyncio.Future[ApiToken | None]] = {}
        # Reads started in the background (kept referenced until they finish).
        self._background: set[asyncio.Future[None]] = set()
        # A create or a callback: the worker's loops may have work now.
        self.work_available = WorkSignal()
        # Set when this process wrote webhook deliveries (the sender wakes at once).
        self.webhooks_due = asyncio.Event()
        self._listeners: list[Callable[[Task], None]] = []

    @property
    def registry(self) -> Registry:
        """Which channels serve which models, as of the channels' last refresh."""
        if self.channels is not None:
            return self.channels.registry
        assert self._registry is not None
        return self._registry

    @property
    def token_ttl(self) -> float:
        """How long a token look-up is reused: a revoked token still works at most this long."""
        return self._token_ttl

    async def get(self, owner: ApiToken, task_id: str) -> Task:
        cached = self.cached_task(owner, task_id)
        if cached is not None:
            return cached
        key = (owner.id, task_id)
        task = await self._load(key)
        if task is None:
            raise NotFound(f"no task '{task_id}' for this token", code="task_not_found")
        fresh = self._tasks.get(key)
        if fresh is not None and fresh.version >= task.version:
            return fresh  # written meanwhile by this process: keep the newer one
        self._remember(task)
        return task

    def cached_task(self, owner: ApiToken, task_id: str) -> Task | None:
        """The task as ``get`` answers it when that needs no database read, else None."""
        key = (owner.id, task_id)
        entry = self._tasks.peek(key)
        if entry is None:
            return None
        cached, deadline = entry
        late = self._monotonic() - deadline
        if late <= 0:
            return cached
        if late <= self._task_ttl and not cached.status.terminal:
            # Just expired: answer it, and re-read it in the background (once per task).
            # A row served this way is at most two cache lifetimes old, and a poller never
            # waits for the database behind a busy event loop.
            self._refresh_in_background(key)
            return cached
        return None

    async def _load(self, key: tuple[str, str]) -> Task | None:
        """One database read per task at a time: when a cached row expires under many pollers,
        they share the read instead of queueing one each (the p99 of the status GET)."""
        return await asyncio.shield(self._reading(key))

    def _reading(self, key: tuple[str, str]) -> asyncio.Future[Task | None]:
        pending = self._loading.get(key)
        if pending is None:
            METRICS.task_reads.labels("cache").inc()
            pending = asyncio.ensure_future(self.store.get_task(*key))
            self._loading[key] = pending
            pending.add_done_callback(lambda _done: self._loading.pop(key, None))
        return pending

    def _refresh_in_background(self, key: tuple[str, str]) -> None:
        if key in self._loading:
            return  # a read is under way; it will refresh the entry

        def refreshed(done: asyncio.Future[Task | None]) -> None:
            if done.cancelled() or done.exception() is not None:
                return  # the next poll past the grace reads again (and reports the error)
            task = done.result()
            if task is None:
                self._tasks.discard(key)
                return
            entry = self._tasks.peek(key)
            if entry is not None and entry[0].version >= task.version:
                task = entry[0]  # unchanged (or newer here): keep the identical value
            self._remember(task)

        self._reading(key).add_done_callback(refreshed)

    async def refresh(self, owner: ApiToken, task_id: str) -> Task:
        """The task as stored now (a cached copy is replaced)."""
        return await self._reread(owner.id, task_id)

    async def _reread(self, owner_id: str, task_id: str, reason: str = "refresh") -> Task:
        METRICS.task_reads.labels(reason).inc()
        task = await self.store.get_task(owner_id, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}' for this token", code="task_not_found")
        cached = self._tasks.get((owner_id, task_id))
        if cached is not None and cached.version == task.version:
            return cached  # keep the identical value (rendered bodies are cached by identity)
        self._remember(task)
        return task

    def add_listener(self, listener: Callable[[Task], None]) -> None:
        """Called with every task this process changes (waiters, webhooks, metrics)."""
        self._listeners.append(listener)

    def _wake(self, task_id: str) -> None:
        """The task changed here (``service.waiting`` tells its watcher)."""

    async def _write(self, old: Task, new: Task, *, unleased_at: float | None = None) -> Task:
        new = dataclasses.replace(new, version=old.version + 1)
        event = webhooks.event_type(new) if not old.status.terminal else None
        mirror = (
            self.mirror_media
            and new.status is Status.SUCCESS
            and not old.status.terminal
            and new.result_url.startswith(("http://", "https://"))
        )
        if mirror:
            new = dataclasses.replace(new, media_state="pending")
        if not await self.store.save_task(
            new,
            old.version,
            notify=True,
            unleased_at=unleased_at,
            webhook=(event, self.clock()) if event else None,
            mirror_at=self.clock() if mirror else None,
            # A task's end closes its pre-charge in the same transaction (exactly once).
            settle_at=self.clock() if new.status.terminal and not old.status.terminal else None,
        ):
            # Someone else changed it first; their write wins and ours is dropped.
            self._tasks.discard((old.owner_id, old.id))
            return old
        if new.status is not old.status:
            METRICS.task_transitions.labels(new.provider, new.model, new.status.value).inc()
            if new.status.terminal:
                log.info(
                    "task ended",
                    extra={
                        "task_id": new.id,
                        "status": new.status.value,
                        "error_code": new.error_code or None,
                    },
                )
        self._remember(new)
        self._wake(new.id)
        for listener in self._listeners:
            listener(new)
        if event:
            self.webhooks_due.set()
        if mirror:
            self.media_due.set()
        if (
            new.status is Status.SUCCESS
            and not old.status.terminal
            and new.submitted_at is not None
        ):
            # What the schedule learns: how long this model's tasks take upstream.
            seconds = max(0.0, self.clock() - new.submitted_at)
            self._durations.setdefault((new.provider, new.model), []).append(seconds)
            if sum(map(len, self._durations.values())) >= LEARN_BATCH:
                await self.flush_learning()
        return new

    async def flush_learning(self) -> None:
        """Fold the durations learned since the last flush into the models' shared typical
        durations: one statement per model, not one transaction per task on a row every worker
        writes (the worker flushes after each round of look-ups)."""
        pending, self._durations = self._durations, {}
        for (provider, model), seconds in pending.items():
            await self.store.learn_durations(provider, model, seconds, self.clock())

    def _remember(self, task: Task) -> None:
        # A finished task never changes again, except once when its durable copy is stored.
        final = task.status.terminal and task.media_state != "pending"
        ttl = math.inf if final else self._task_ttl
        self._tasks.put((task.owner_id, task.id), task, ttl)


def _canonical(prices: PriceTable, registry: Registry) -> PriceTable:
    """The price table under catalogue names; a name no provider knows is a start-up error (a
    typo must not make a model free)."""

    def name(model: str) -> str:
        try:
            return registry.resolve(model).name
        except InvalidRequest as exc:
            if exc.code == "model_not_configured":
                return model  # known, not served here (no key): priced once it is
            raise ConfigError(
                f"invalid setting REELGATE_PRICES: no model '{model}' on this gateway"
            ) from None

    unknown = sorted(prices.providers - set(plugins.specs()))
    if unknown:
        raise ConfigError(
            f"invalid setting REELGATE_PRICES: a rule names provider '{unknown[0]}', which this "
            f"gateway does not know (known: {', '.join(sorted(plugins.specs()))})"
        )
    return prices.renamed(name)
