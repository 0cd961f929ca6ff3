"""The use cases: authenticate, create, get, and apply what the engine learns upstream.

The service is the only writer of tasks. It keeps two in-process caches for the hot status GET:
token look-ups, and task rows (terminal rows never change; a non-terminal row is reused for at
most ``task_cache_ttl`` seconds and replaced at once when this process writes it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from reelgate.core import lifecycle
from reelgate.core.cache import TtlCache
from reelgate.core.capabilities import normalize
from reelgate.core.errors import AuthenticationError, InvalidRequest, NotFound
from reelgate.core.ids import ApiToken, NewToken, hash_token, new_task_id, new_token
from reelgate.core.lifecycle import Observation, Status, Task
from reelgate.core.request import VideoRequest
from reelgate.net import Network, check_host, decode_data_uri
from reelgate.providers.base import Registry
from reelgate.store.base import Store

MAX_IMAGE_BYTES = 20 * 1024 * 1024
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
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
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
    async def create(self, owner: ApiToken, request: VideoRequest) -> Task:
        provider, caps = self.registry.resolve(request.model)
        normalized = normalize(request, caps)
        for index, ref in enumerate(normalized.images):
            await self._check_image(ref, "image" if index == 0 else f"images[{index}]")
        now = self.clock()
        task = Task(
            id=new_task_id(),
            owner_id=owner.id,
            provider=provider.name,
            model=caps.name,
            request=normalized.to_json(),
            status=Status.QUEUED,
            submit_time=int(now),
            next_poll_at=now,
        )
        await self.store.insert_task(task)
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

    def add_listener(self, listener: Callable[[Task], None]) -> None:
        """Called with every task this process changes (waiters, webhooks, metrics)."""
        self._listeners.append(listener)

    # -- writes from the engine --------------------------------------------------------------
    async def mark_submitted(self, task: Task, upstream_id: str, next_poll_at: float) -> Task:
        return await self._write(
            task,
            dataclasses.replace(
                task,
                upstream_id=upstream_id,
                submit_attempts=task.submit_attempts + 1,
                next_poll_at=next_poll_at,
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
                changed, next_poll_at=next_poll_at, poll_attempts=0, missing_looks=0
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

    async def _write(self, old: Task, new: Task) -> Task:
        new = dataclasses.replace(new, version=old.version + 1)
        if not await self.store.save_task(new, old.version):
            # Someone else changed it first; their write wins and ours is dropped.
            self._tasks.discard((old.owner_id, old.id))
            return old
        self._remember(new)
        for listener in self._listeners:
            listener(new)
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
