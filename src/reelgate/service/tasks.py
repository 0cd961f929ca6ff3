"""Client use cases on tasks and tokens: authenticate, create (idempotent), list, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from typing import Any

from reelgate import logs
from reelgate.core import canonical, lifecycle, media, schedule
from reelgate.core.capabilities import NormalizedRequest, fits, normalize
from reelgate.core.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
)
from reelgate.core.ids import ApiToken, NewToken, hash_token, new_task_id, new_token
from reelgate.core.lifecycle import Status, Task
from reelgate.core.pricing import Balance, Charge
from reelgate.core.request import VideoRequest, parse_prompt
from reelgate.providers.registry import ModelEntry
from reelgate.service.engine_side import MIRROR_SCHEME
from reelgate.service.images import check_image, check_url
from reelgate.service.waiting import Waiting

# How many times a cancel waits for a submission under way to finish.
CANCEL_WAITS = 3
# How long an Idempotency-Key is remembered.
IDEMPOTENCY_WINDOW_S = 24 * 3600.0
_NEGATIVE_TOKEN_TTL = 1.0


def _files_of(task: Task) -> list[str]:
    """Every file reelgate may keep of ``task``: what its upstream rendered here (the sandbox's
    ``local://`` results), its durable copies, and the copies' names before the task records
    them (a copy that was stored a moment before the delete)."""
    refs = [task.result_url, task.last_frame_url, task.video_ref or "", task.last_frame_ref or ""]
    for variant, url in (("video", task.result_url), ("last_frame", task.last_frame_url)):
        if url.startswith(("http://", "https://")):
            refs.append(MIRROR_SCHEME + media.file_name(task.id, variant, url))
    return refs


class TaskUseCases(Waiting):
    # -- tokens ------------------------------------------------------------------------------
    async def authenticate(self, plaintext: str | None) -> ApiToken:
        if not plaintext:
            raise AuthenticationError(
                "missing API token: send 'Authorization: Bearer <token>'", code="missing_token"
            )
        digest = hash_token(plaintext)
        cached = self._tokens.get(digest)
        if cached is None:
            pending = self._token_loads.get(digest)
            if pending is None:  # one look-up per token at a time (see ``_load``)
                pending = asyncio.ensure_future(self.store.token_by_hash(digest))
                self._token_loads[digest] = pending
                pending.add_done_callback(lambda _done: self._token_loads.pop(digest, None))
            cached = await asyncio.shield(pending)
            ttl = self._token_ttl if cached is not None else _NEGATIVE_TOKEN_TTL
            self._tokens.put(digest, cached, ttl)
        if cached is None or not cached.active:
            raise AuthenticationError("invalid or revoked API token", code="invalid_token")
        return cached

    def cached_token(self, plaintext: str | None) -> ApiToken | None:
        """The active token ``authenticate`` would answer, when that needs no database read."""
        if not plaintext:
            return None
        cached = self._tokens.get(hash_token(plaintext))
        return cached if cached is not None and cached.active else None

    async def create_token(self, name: str, **limits: Any) -> tuple[ApiToken, NewToken]:
        """A new token (``models``, ``rpm``, ``max_concurrent`` limits optional)."""
        token = new_token()
        record = await self.store.create_token(name, token, int(self.clock()), **limits)
        return record, token

    def forget_tokens(self) -> None:
        """Drop cached token look-ups (after a change of limits, a rotation, a revocation)."""
        self._tokens.clear()

    async def revoke_token(self, ref: str) -> ApiToken | None:
        record = await self.store.revoke_token(ref, int(self.clock()))
        self._tokens.clear()
        return record

    # -- tasks -------------------------------------------------------------------------------
    async def remix(
        self, owner: ApiToken, source: Task, prompt: str, idempotency_key: str | None = None
    ) -> Task:
        """A new task: ``source``'s request with another prompt, where the model can remix. The
        prompt is checked as a create's is (the same canonical text, the same bound)."""
        prompt = parse_prompt(prompt)
        if source.status is not Status.SUCCESS:
            raise Conflict("only a completed video can be remixed", code="not_remixable")
        caps = self.registry.resolve(source.model).caps
        if not caps.remix:
            raise InvalidRequest(
                f"model '{caps.name}' cannot remix a video; create a new one instead",
                code="unsupported_parameter",
                param="model",
            )
        old = NormalizedRequest.from_json(source.request)
        request = VideoRequest(
            model=old.model,
            prompt=prompt,
            images=old.images,
            duration=old.duration,
            size=(old.width, old.height),
            metadata=dict(old.options),
        )
        return await self.create(
            owner, request, idempotency_key=idempotency_key, remixed_from=source.id
        )

    async def delete(self, owner: ApiToken, task_id: str) -> Task:
        """Forget a task (OpenAI's DELETE): a waiting one is cancelled first, a running one
        cannot be (409). Its files are deleted before the task is (a failing store is a 503 and
        the task stays), so no link to them serves anything after a ``deleted``; afterwards
        every surface answers 404 for it."""
        task = await self.refresh(owner, task_id)
        if not task.status.terminal:
            task = await self.cancel(owner, task_id)
        if self.media is not None:
            await self.media.delete(_files_of(task))
        for _ in range(3):
            gone = await self._write(task, dataclasses.replace(task, deleted_at=self.clock()))
            if gone is not task:
                self._tasks.discard((owner.id, task_id))
                return gone
            task = await self.refresh(owner, task_id)
        raise Conflict("the task kept changing; try again", code="task_busy", retry_after=1.0)

    async def create(
        self,
        owner: ApiToken,
        request: VideoRequest,
        *,
        idempotency_key: str | None = None,
        remixed_from: str | None = None,
    ) -> Task:
        """Validate and persist a task ("accepted, not yet submitted"); the engine submits it.

        With an ``idempotency_key``, the same key and body within 24 h answer the task the first
        request made (no second task, no second upstream call); concurrent duplicates too. A
        key that cannot be stored as sent is refused, never ignored.
        """
        canonical.token(idempotency_key, "Idempotency-Key")
        entry, normalized, offering_providers = await self._checked(owner, request)
        caps = entry.caps
        # Priced on every provider it may run on (the most expensive is held until it ends).
        charge = self.prices.estimate(normalized, caps, offering_providers)
        now = self.clock()
        body = normalized.to_json()
        if remixed_from is not None:
            body["remixed_from"] = remixed_from
        task = Task(
            id=new_task_id(),
            owner_id=owner.id,
            # The home offering's provider until a channel of another one takes it.
            provider=offering_providers[0],
            model=caps.name,
            request=body,
            status=Status.QUEUED,
            submit_time=int(now),
            created_at=now,
            next_poll_at=now,
            deadline_at=schedule.deadline(now, max_task_seconds=self.max_task_seconds),
            callback_url=request.callback_url,
            request_id=logs.current_request_id(),
            offering_providers="," + ",".join(offering_providers) + ",",
        )
        if owner.rpm is not None:
            await self._within_rate(owner)
        if idempotency_key is None:
            await self.store.insert_task(task, max_active=owner.max_concurrent, charge=charge)
        else:
            fingerprint = hashlib.sha256(
                json.dumps(
                    {"request": body, "callback_url": request.callback_url},
                    sort_keys=True,
                    separators=(",", ":"),
                ).encode()
            ).hexdigest()
            task, created = await self.store.create_task(
                task,
                idempotency_key,
                fingerprint,
                now - IDEMPOTENCY_WINDOW_S,
                max_active=owner.max_concurrent,
                charge=charge,
            )
            if not created:
                return task
        self._remember(task)
        self.work_available.set()
        return task

    async def quote(self, owner: ApiToken, request: VideoRequest) -> tuple[Charge | None, Balance]:
        """What creating ``request`` would pre-charge (``None``: a free model), checked exactly
        as a create is, and the token's balance now."""
        entry, normalized, providers = await self._checked(owner, request)
        charge = self.prices.estimate(normalized, entry.caps, providers)
        return charge, await self.store.balance(owner.id)

    async def _checked(
        self, owner: ApiToken, request: VideoRequest
    ) -> tuple[ModelEntry, NormalizedRequest, list[str]]:
        """The model, the normalized request and the providers whose offering can honour it
        (the home offering's first), or the error a create answers."""
        registry = self.registry
        entry = registry.resolve(request.model)
        caps = entry.caps
        if owner.models and caps.name not in owner.models and request.model not in owner.models:
            raise PermissionDenied(
                f"this token may not use model '{caps.name}'",
                code="model_not_allowed",
                param="model",
            )
        normalized = normalize(request, caps)
        # Offerings elsewhere (aggregators) take the request only where it fits their limits.
        fitting = [caps.provider] + [
            o.provider
            for o in entry.offerings
            if o.provider != caps.provider and fits(normalized, o.caps) is None
        ]
        registry.check_routable(caps.name, fitting)
        for index, ref in enumerate(normalized.images):
            await check_image(self._allow, ref, "image" if index == 0 else f"images[{index}]")
        if request.callback_url is not None:
            await check_url(self._allow, request.callback_url, "callback_url")
        return entry, normalized, fitting

    async def _within_rate(self, owner: ApiToken) -> None:
        """Take one create from the token's per-minute budget, shared by every API replica."""
        assert owner.rpm is not None
        rate = owner.rpm / 60.0
        taken = await self.buckets.take_tokens(
            f"token:{owner.id}", 1, rate, owner.rpm, self.clock()
        )
        if not taken:
            raise RateLimited(
                f"this token may create {owner.rpm} tasks a minute; try again shortly",
                code="rate_limited",
                retry_after=1.0 / rate,
            )

    async def list(
        self,
        owner: ApiToken,
        *,
        limit: int = 20,
        status: Status | None = None,
        model: str | None = None,
        after: str | None = None,
        oldest_first: bool = False,
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
                model = self.registry.resolve(model).name
        found = await self.store.list_tasks(
            owner.id,
            limit=limit + 1,
            status=status.value if status is not None else None,
            model=model,
            before=before,
            oldest_first=oldest_first,
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
        provider = self.registry.instance(task.channel)
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
