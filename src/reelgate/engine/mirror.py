"""Copies results into reelgate's own storage before the upstream's URLs expire (Ark's last 24 h).

Copy jobs are written with a task's success and claimed with a lease. Each file is streamed in
chunks into the media storage (a local directory: via ``<name>.part`` and a rename; a bucket: a
multipart upload), so memory stays bounded whatever the size and a half-written file is never
served. Every connection goes to an address the SSRF guard resolved and checked (``net``),
redirects included. A failed copy is retried (``core.media.retry_at``) and, once given up, leaves
the task a success with its upstream URL. Stored copies are deleted after the retention period.
A copy whose handling raises anything else is a failed attempt too (logged with its traceback);
a failing round backs off, and the loop is supervised (``engine/supervisor.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from reelgate.core import media
from reelgate.core.errors import InvalidRequest, ReelgateError
from reelgate.core.media import MediaCopy
from reelgate.engine.supervisor import (
    Pause,
    log_fault,
    pause,
    settle_all,
    supervised_rounds,
    unavailable,
)
from reelgate.files import MediaFiles
from reelgate.metrics import METRICS
from reelgate.net import AddressGuard, Network, Resolver, guarded_client, system_resolver
from reelgate.service import VideoService
from reelgate.store.base import CopyOutbox

log = logging.getLogger("reelgate.mirror")

BATCH = 4
LEASE_SECONDS = 900.0
IDLE_S = 2.0
CHUNK = 1024 * 1024
MAX_REDIRECTS = 3
MAX_BYTES = 4 * 1024**3


class MediaMirror:
    def __init__(
        self,
        service: VideoService,
        storage: MediaFiles,
        *,
        worker_id: str,
        retention_s: float,
        outbox: CopyOutbox | None = None,
        allow_networks: Sequence[Network] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        pause_for: Pause = pause,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.service = service
        # The mirror's port: the copy jobs (default: the service's store).
        self.outbox: CopyOutbox = outbox if outbox is not None else service.store
        self._pause = pause_for
        self.storage = storage
        self.worker_id = worker_id
        self.retention_s = retention_s
        self.allow = allow_networks
        # Every connection goes to an address the guard checked (each redirect hop included).
        self._client = guarded_client(
            AddressGuard(allow_networks, resolver),
            timeout=httpx.Timeout(60.0, connect=10.0),
            transport=transport,
        )

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await supervised_rounds(
                "mirror",
                self.tick,
                stop,
                due=self.service.media_due,
                idle_s=IDLE_S,
                busy=BATCH,
                owner=self.worker_id,
                clock=self.service.clock,
                wait=self._pause,
            )
        finally:
            await self._client.aclose()

    async def tick(self) -> int:
        now = self.service.clock()
        for gone in await self.outbox.expire_copies(now, 100):
            try:
                if gone.name:
                    await self.storage.delete(gone.name)
                await self.service.media_expired(gone.task_id)
            except Exception as exc:
                if unavailable(exc):
                    raise
                # Its row is expired already: the file stays behind, the links fall back.
                log_fault(
                    "mirror",
                    f"expiry of {gone.task_id}'s copy",
                    exc,
                    then="its file stays behind; links fall back to the upstream's",
                )
        due = await self.outbox.claim_copies(now, BATCH, self.worker_id, LEASE_SECONDS)
        await settle_all(self.copy(c) for c in due)
        return len(due)

    async def copy(self, job: MediaCopy) -> None:
        name = media.file_name(job.task_id, job.variant, job.source_url)
        try:
            size = await self._download(job.source_url, name)
        except Exception as exc:  # every failure is a failed attempt
            expected = isinstance(exc, ReelgateError | httpx.HTTPError | OSError)
            message = exc.message if isinstance(exc, ReelgateError) else f"{type(exc).__name__}"
            now = self.service.clock()
            retry = media.retry_at(job.attempts + 1, now)
            if expected:  # FilesError included
                log.warning("copy of %s %s failed: %s", job.task_id, job.variant, message)
            else:  # a bug: its traceback, and the same retries
                log_fault(
                    "mirror",
                    f"copy of {job.task_id} {job.variant}",
                    exc,
                    job.attempts + 1,
                    media.MAX_COPY_ATTEMPTS,
                    None if retry is None else retry - now,
                    then=None if retry is not None else "giving up: the upstream URL stays",
                )
                message = "internal error in reelgate; it is logged"
            METRICS.mirror_failures.inc()
            copies = await self.outbox.finish_copy(
                job,
                state="pending" if retry is not None else "failed",
                now=now,
                next_attempt_at=retry,
                error=message[:500],
            )
        else:
            METRICS.mirror_bytes.inc(size)
            now = self.service.clock()
            copies = await self.outbox.finish_copy(
                job,
                state="stored",
                now=now,
                name=name,
                size=size,
                expires_at=now + self.retention_s,
            )
        await self.service.media_settled(job.task_id, copies)

    async def _download(self, url: str, name: str) -> int:
        """Stream ``url`` into the storage under ``name``; the bytes stored."""
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidRequest("only http(s) URLs are copied", code="url_not_allowed")
            try:
                async with self._client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    response.raise_for_status()
                    return await self.storage.save(name, _limited(response))
            except httpx.InvalidURL:
                raise InvalidRequest("the URL does not parse", code="url_not_allowed") from None
        raise InvalidRequest("too many redirects", code="url_not_allowed")


async def _limited(response: httpx.Response) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in response.aiter_bytes(CHUNK):
        size += len(chunk)
        if size > MAX_BYTES:
            raise InvalidRequest("the file is too large to keep", code="too_large")
        yield chunk
