"""The use cases: authenticate, create, get, wait, and apply what the engine learns upstream.

The service is the only writer of tasks. It keeps two in-process caches for the hot status GET:
token look-ups, and task rows (terminal rows never change; a non-terminal row is reused for at
most ``task_cache_ttl`` seconds and replaced at once when this process writes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from reelgate.core import lifecycle, schedule
from reelgate.core.cache import TtlCache
from reelgate.core.capabilities import NormalizedRequest, normalize
from reelgate.core.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    ReelgateError,
)
from reelgate.core.ids import ApiToken, NewToken, hash_token, new_task_id, new_token
from reelgate.core.lifecycle import Observation, Status, Task
from reelgate.core.request import VideoRequest
from reelgate.net import Network, check_host, decode_data_uri
from reelgate.providers.base import Registry
from reelgate.store.base import Store

MAX_IMAGE_BYTES = 20 * 1024 * 1024
# How many times a cancel waits for a submission under way to finish.
CANCEL_WAITS = 3
# How long an Idempotency-Key is remembered.
IDEMPOTENCY_WINDOW_S = 24 * 3600.0
_NEGATIVE_TOKEN_TTL = 1.0


class VideoService:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        token_cache_ttl: float = 5.0,
        task_cache_ttl: float = 1.0,
        task_cache_size: int = 100_000,
        allow_networks: Sequence[Network] = (),
        max_task_seconds: float = schedule.MAX_TASK_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_task_seconds = max_task_seconds
        self._waiters: dict[str, asyncio.Event] = {}
        self._monotonic = monotonic
        # A waiter re-reads its task at least this often (a change it cannot hear of).
        self.recheck = 1.0
        self.default_typical = schedule.TRACKING.default_typical
        self._typical: dict[tuple[str, str], float] = {}
        self._typical_until = float("-inf")
        self.registry = registry
        self.clock = clock
        self._allow = allow_networks
        self._token_ttl = token_cache_ttl
        self._task_ttl = task_cache_ttl
        self._tokens: TtlCache[str, ApiToken | None] = TtlCache(10_000, monotonic)
        self._tasks: TtlCache[tuple[str, str], Task] = TtlCache(task_cache_size, monotonic)
        self.work_available = asyncio.Event()
        self._listeners: list[Callable[[Task], None]] = []

    # -- tokens ------------------------------------------------------------------------------
    async def authenticate(self, plaintext: str | None) -> ApiToken:
        if not plaintext:
            raise AuthenticationError(
                "missing API token: send 'Authorization: Bearer <token>'", code="missing_token"
            )
        digest = hash_token(plaintext)
        cached = self._tokens.get(digest)
        if cached is None:
            cached = await self.store.token_by_hash(digest)
            ttl = self._token_ttl if cached is not None else _NEGATIVE_TOKEN_TTL
            self._tokens.put(digest, cached, ttl)
        if cached is None or not cached.active:
            raise AuthenticationError("invalid or revoked API token", code="invalid_token")
        return cached

    async def create_token(self, name: str) -> tuple[ApiToken, NewToken]:
        token = new_token()
        record = await self.store.create_token(name, token, int(self.clock()))
        return record, token

    async def revoke_token(self, ref: str) -> ApiToken | None:
        record = await self.store.revoke_token(ref, int(self.clock()))
        self._tokens.clear()
        return record

    # -- tasks -------------------------------------------------------------------------------
    async def create(
        self, owner: ApiToken, request: VideoRequest, *, idempotency_key: str | None = None
    ) -> Task:
        """Validate and persist a task ("accepted, not yet submitted"); the engine submits it.

        With an ``idempotency_key``, the same key and body within 24 h answer the task the first
        request made (no second task, no second upstream call); concurrent duplicates too.
        """
        provider, caps = self.registry.resolve(request.model)
        normalized = normalize(request, caps)
        for index, ref in enumerate(normalized.images):
            await self._check_image(ref, "image" if index == 0 else f"images[{index}]")
        now = self.clock()
        body = normalized.to_json()
        task = Task(
            id=new_task_id(),
            owner_id=owner.id,
            provider=provider.name,
            model=caps.name,
            request=body,
            status=Status.QUEUED,
            submit_time=int(now),
            created_at=now,
            next_poll_at=now,
            deadline_at=schedule.deadline(now, max_task_seconds=self.max_task_seconds),
        )
        if idempotency_key is None:
            await self.store.insert_task(task)
        else:
            fingerprint = hashlib.sha256(
                json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
            task, created = await self.store.create_task(
                task, idempotency_key, fingerprint, now - IDEMPOTENCY_WINDOW_S
            )
            if not created:
                return task
        self._remember(task)
        self.work_available.set()
        return task

    async def get(self, owner: ApiToken, task_id: str) -> Task:
        key = (owner.id, task_id)
        task = self._tasks.get(key)
        if task is None:
            task = await self.store.get_task(owner.id, task_id)
            if task is None:
                raise NotFound(f"no task '{task_id}' for this token", code="task_not_found")
            self._remember(task)
        return task

    async def list(
        self,
        owner: ApiToken,
        *,
        limit: int = 20,
        status: Status | None = None,
        model: str | None = None,
        after: str | None = None,
    ) -> tuple[list[Task], bool]:
        """The token's own tasks, newest first, and whether more follow. ``after`` is the id of
        the last task of the previous page (a task of another token is unknown here)."""
        before = None
        if after is not None:
            anchor = await self.store.get_task(owner.id, after)
            if anchor is None:
                raise InvalidRequest(
                    f"'after' names no task of this token: '{after}'",
                    code="invalid_parameter",
                    param="after",
                )
            before = (anchor.created_at, anchor.id)
        if model is not None:
            # A model no longer served still lists its old tasks under its stored name.
            with contextlib.suppress(InvalidRequest):
                model = self.registry.resolve(model)[1].name
        found = await self.store.list_tasks(
            owner.id,
            limit=limit + 1,
            status=status.value if status is not None else None,
            model=model,
            before=before,
        )
        return found[:limit], len(found) > limit

    async def cancel(self, owner: ApiToken, task_id: str) -> Task:
        """Cancel a task: locally while it waits in reelgate's queue, upstream while it waits in
        the upstream's; a running or finished task is ``409 not_cancellable``.

        A task a worker is submitting at this moment is waited for (a few seconds), then
        cancelled upstream."""
        for _ in range(CANCEL_WAITS):
            try:
                return await self._cancel(owner, task_id)
            except Conflict as exc:
                if exc.code != "task_busy":
                    raise
                busy = await self.refresh(owner, task_id)
                await self.wait_change(owner, task_id, busy.version, 2.0)
        return await self._cancel(owner, task_id)

    async def _cancel(self, owner: ApiToken, task_id: str) -> Task:
        task = await self.refresh(owner, task_id)
        if task.status is Status.FAILURE and task.error_code == "cancelled":
            return task  # cancelling twice is not an error
        if task.status is not Status.QUEUED:
            raise Conflict(
                f"the task is {task.status.value}; only a queued task can be cancelled"
                + (" (the upstream cannot stop a running one)" if not task.status.terminal else ""),
                code="not_cancellable",
            )
        provider = self.registry.account(task.provider, task.account)
        if task.upstream_id is None and task.submit_started_at is not None and provider:
            # An earlier attempt may have created it upstream: find out before deciding.
            found = await provider.reconcile(
                task.id, NormalizedRequest.from_json(task.request), task.submit_started_at
            )
            if found is not None:
                task = await self._write(task, dataclasses.replace(task, upstream_id=found))
        if task.upstream_id is None:
            cancelled = lifecycle.fail(
                task, code="cancelled", message="cancelled by the client", now=self.clock()
            )
            written = await self._write(task, cancelled, unleased_at=self.clock())
            if written is task:
                raise Conflict(
                    "the task is being submitted right now; try again in a moment",
                    code="task_busy",
                    retry_after=1.0,
                )
            return written
        if provider is None:
            raise Conflict("the task's upstream is no longer configured", code="not_cancellable")
        await provider.cancel(task.upstream_id)  # Conflict(not_cancellable) once it runs
        for _ in range(3):
            current = await self.refresh(owner, task_id)
            if current.status.terminal:
                return current
            done = await self._write(
                current,
                lifecycle.fail(
                    current, code="cancelled", message="cancelled by the client", now=self.clock()
                ),
            )
            if done is not current:
                return done
        return await self.refresh(owner, task_id)

    def add_listener(self, listener: Callable[[Task], None]) -> None:
        """Called with every task this process changes (waiters, webhooks, metrics)."""
        self._listeners.append(listener)

    # -- writes from the engine --------------------------------------------------------------
    async def mark_submitted(
        self, task: Task, upstream_id: str, next_poll_at: float, deadline_at: float
    ) -> Task:
        """Record the upstream id; the same write ends the "being submitted" state."""
        return await self._write(
            task,
            dataclasses.replace(
                task,
                upstream_id=upstream_id,
                submitted_at=self.clock(),
                submit_started_at=None,
                submit_attempts=task.submit_attempts + 1,
                next_poll_at=next_poll_at,
                deadline_at=deadline_at,
                poll_attempts=0,
            ),
        )

    async def observe(self, task: Task, seen: Observation, next_poll_at: float) -> Task:
        """Apply an upstream observation; raises IllegalTransition for forbidden moves."""
        changed = lifecycle.apply(task, seen, self.clock())
        if changed is None:
            await self.reschedule(task, next_poll_at, polled=True)
            return task
        return await self._write(
            task,
            dataclasses.replace(
                changed,
                next_poll_at=next_poll_at,
                poll_attempts=task.poll_attempts + 1,
                missing_looks=0,
            ),
        )

    async def fail(self, task: Task, code: str, message: str) -> Task:
        return await self._write(
            task, lifecycle.fail(task, code=code, message=message, now=self.clock())
        )

    async def reschedule(
        self,
        task: Task,
        next_poll_at: float,
        *,
        polled: bool = False,
        submit_failed: bool = False,
        missing: bool = False,
    ) -> None:
        """Look again later without a visible change (no version bump, caches stay valid)."""
        await self.store.save_task(
            dataclasses.replace(
                task,
                next_poll_at=next_poll_at,
                poll_attempts=task.poll_attempts + int(polled),
                submit_attempts=task.submit_attempts + int(submit_failed),
                missing_looks=task.missing_looks + 1 if missing else 0,
            ),
            task.version,
        )

    # -- upstream callbacks --------------------------------------------------------------------
    async def callback(self, provider_name: str, task_id: str, body: bytes) -> bool:
        """An upstream says a task changed: look it up soon (the engine confirms before applying).

        The caller has checked the address's token. Returns whether a look was scheduled: a
        callback for a finished task, another provider's, or naming another upstream task
        changes nothing.
        """
        task = await self.store.find_task(task_id)
        provider = self.registry.provider(provider_name)
        if task is None or provider is None or task.provider != provider_name:
            return False
        if task.status.terminal or task.upstream_id is None:
            return False
        named = provider.parse_callback(body)
        if named is not None and named != task.upstream_id:
            return False
        nudged = await self.store.nudge(task.id, self.clock() + schedule.CALLBACK_COALESCE)
        if nudged:
            self.work_available.set()
        return nudged

    # -- waiting for changes -------------------------------------------------------------------
    async def wait_change(
        self, owner: ApiToken, task_id: str, version: int, seconds: float
    ) -> Task:
        """The task once its version is past ``version`` (or as it is after ``seconds``).

        Woken at once by a change this process makes or hears of (PostgreSQL NOTIFY); between
        wake-ups the row is re-read every ``recheck`` seconds, so a change made by a process that
        cannot notify (a separate worker on SQLite) is seen within that time.
        """
        loop = asyncio.get_running_loop()  # waiting is real time, whatever the task clock says
        deadline = loop.time() + max(0.0, seconds)
        task = await self.get(owner, task_id)
        while task.version <= version and not task.status.terminal:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            event = self._waiters.setdefault(task_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, self.recheck))
            task = await self.refresh(owner, task_id)
        return task

    async def wait_status(
        self, owner: ApiToken, task_id: str, seen_version: int | None, seconds: float
    ) -> Task:
        """Long-poll: the task once its status differs from what the client last saw.

        ``seen_version`` is the version the client holds (from its ETag): an older one answers
        at once. Changes invisible to clients (a recorded upstream id) do not end the wait.
        """
        task = await self.get(owner, task_id)
        if seen_version is not None and seen_version < task.version:
            return task
        start = task.status
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not task.status.terminal and task.status is start:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            task = await self.wait_change(owner, task_id, task.version, remaining)
        return task

    async def refresh(self, owner: ApiToken, task_id: str) -> Task:
        """The task as stored now (a cached copy is replaced)."""
        task = await self.store.get_task(owner.id, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}' for this token", code="task_not_found")
        cached = self._tasks.get((owner.id, task_id))
        if cached is not None and cached.version == task.version:
            return cached  # keep the identical value (rendered bodies are cached by identity)
        self._remember(task)
        return task

    async def expected_remaining(self, task: Task) -> float | None:
        """Seconds until the task is expected to finish (per-model history), None if done."""
        if task.status.terminal:
            return None
        now = self._monotonic()
        if now >= self._typical_until:
            self._typical_until = now + 60.0
            with contextlib.suppress(ReelgateError):
                self._typical = await self.store.typical_durations()
        typical = self._typical.get((task.provider, task.model), self.default_typical)
        started = task.submitted_at or float(task.submit_time)
        return max(0.0, started + typical - self.clock())

    def remote_change(self, owner_id: str, task_id: str, version: int) -> None:
        """Another process changed a task (PostgreSQL NOTIFY): drop stale copies, wake waiters."""
        cached = self._tasks.get((owner_id, task_id))
        if cached is not None and cached.version < version:
            self._tasks.discard((owner_id, task_id))
        self._wake(task_id)

    def _wake(self, task_id: str) -> None:
        event = self._waiters.pop(task_id, None)
        if event is not None:
            event.set()

    async def _write(self, old: Task, new: Task, *, unleased_at: float | None = None) -> Task:
        new = dataclasses.replace(new, version=old.version + 1)
        if not await self.store.save_task(new, old.version, notify=True, unleased_at=unleased_at):
            # Someone else changed it first; their write wins and ours is dropped.
            self._tasks.discard((old.owner_id, old.id))
            return old
        self._remember(new)
        self._wake(new.id)
        for listener in self._listeners:
            listener(new)
        if (
            new.status is Status.SUCCESS
            and not old.status.terminal
            and new.submitted_at is not None
        ):
            # What the schedule learns: how long this model's tasks take upstream.
            seconds = max(0.0, self.clock() - new.submitted_at)
            await self.store.learn_duration(new.provider, new.model, seconds, self.clock())
        return new

    def _remember(self, task: Task) -> None:
        ttl = math.inf if task.status.terminal else self._task_ttl
        self._tasks.put((task.owner_id, task.id), task, ttl)

    async def _check_image(self, ref: str, param: str) -> None:
        if not ref.startswith("data:"):
            parts = urlsplit(ref)
            if not parts.hostname:
                raise InvalidRequest(
                    f"'{param}' is not a valid URL", code="invalid_image", param=param
                )
            await check_host(
                parts.hostname,
                parts.port or (443 if parts.scheme == "https" else 80),
                self._allow,
            )
            return
        data = decode_data_uri(ref, param=param)
        if len(data) > MAX_IMAGE_BYTES:
            raise InvalidRequest(
                f"'{param}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                code="invalid_image",
                param=param,
            )
        await asyncio.to_thread(_verify_image, data, param)


def _verify_image(data: bytes, param: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise InvalidRequest(
            f"'{param}' is not a readable image (png, jpeg, webp, gif, bmp or tiff)",
            code="invalid_image",
            param=param,
        ) from None
