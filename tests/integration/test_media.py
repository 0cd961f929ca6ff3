"""Durable media: results copied from the upstream's (expiring) URLs into reelgate's storage, on a
real SQLite file, a real HTTP file server on loopback and an injected clock."""

from __future__ import annotations

import ipaddress
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgate.api.media import MediaLinks
from reelgate.api.seed import task_data
from reelgate.core.lifecycle import Status
from reelgate.engine.mirror import MediaMirror
from reelgate.engine.worker import Worker
from reelgate.files import LocalFiles, MediaFiles, S3Files
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import InMemoryProvider, ManualClock
from reelgate.testing.s3_simulator import S3Simulator, serve_s3_in_thread
from tests.files import FileServer
from tests.integration.test_engine import owner
from tests.integration.test_engine_queue import request, upstream

pytestmark = pytest.mark.anyio
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"x" * 5000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cdn() -> Iterator[FileServer]:
    server = FileServer().start()
    yield server
    server.stop()


def cdn_upstream(clock: ManualClock, cdn: FileServer, video: str = "/v.mp4") -> InMemoryProvider:
    """The in-memory upstream, handing out video and last-frame URLs on a real file server."""
    return upstream(
        clock,
        queued=1,
        running=1,
        video_url=cdn.url(video) + "?X-Tos-Expires=1&sig=abc",
        last_frame_url=cdn.url("/f.png"),
    )


async def succeeded(
    store: SqlStore,
    tmp_path: Path,
    cdn: FileServer,
    clock: ManualClock,
    storage: MediaFiles | None = None,
    **kw: Any,
) -> tuple[VideoService, MediaMirror, Any, Any]:
    up = cdn_upstream(clock, cdn, **kw)
    service = VideoService(store, Registry([up]), clock=clock, monotonic=clock, mirror_media=True)
    worker = Worker(service, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    clock.advance(100)
    await worker.tick()
    done = await service.get(me, task.id)
    assert (done.status, done.media_state) == (Status.SUCCESS, "pending")
    mirror = MediaMirror(
        service,
        storage or LocalFiles(tmp_path / "mirror"),
        worker_id="w",
        retention_s=86400,
        allow_networks=LOOPBACK,
    )
    return service, mirror, me, done


async def test_results_are_copied_and_offered_at_durable_links(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    cdn.files.update({"/v.mp4": MP4, "/f.png": b"\x89PNG frame"})
    clock = ManualClock()
    service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock)
    assert await mirror.tick() == 2
    kept = await service.refresh(me, task.id)
    assert (kept.media_state, kept.status) == ("stored", Status.SUCCESS)
    assert kept.video_ref == f"local://mirror/{task.id}.video.mp4"
    assert (tmp_path / "mirror" / f"{task.id}.video.mp4").read_bytes() == MP4
    assert (tmp_path / "mirror" / f"{task.id}.last_frame.png").read_bytes() == b"\x89PNG frame"
    links = MediaLinks(
        b"k" * 32, "https://gw", {"mirror": tmp_path / "mirror"}, ttl=3600, clock=clock
    )
    data = task_data(kept, links)
    assert data["result_url"].startswith(f"https://gw/v1/media/mirror/{task.id}.video.mp4?")
    assert data["fail_reason"] == task.result_url  # the seed's field keeps the upstream URL
    assert data["last_frame_url"].startswith("https://gw/v1/media/mirror/")
    durable = MediaLinks(
        b"k" * 32, "https://gw", {}, ttl=3600, clock=clock, durable_fail_reason=True
    )
    assert task_data(kept, durable)["fail_reason"] == task_data(kept, durable)["result_url"]
    assert list((tmp_path / "mirror").glob("*.part")) == []


async def test_a_failed_copy_is_retried_and_never_fails_the_task(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    cdn.files.update({"/v.mp4": MP4, "/f.png": b"png"})
    cdn.failures.extend([503, 503])
    clock = ManualClock()
    service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock)
    await mirror.tick()  # both copies fail once (503)
    assert (await service.refresh(me, task.id)).media_state == "pending"
    assert await mirror.tick() == 0  # not before the retry time
    clock.advance(31)
    await mirror.tick()
    kept = await service.refresh(me, task.id)
    assert kept.media_state == "stored"
    # A file that never comes: given up after the attempts, the task stays a success.
    cdn.files.clear()
    cdn.files["/f.png"] = b"png"
    service2, mirror2, me2, task2 = await succeeded(
        store, tmp_path, cdn, ManualClock(), video="/gone"
    )
    for _ in range(12):
        await mirror2.tick()
        service2.clock.advance(3600)  # type: ignore[attr-defined]
    gone = await service2.refresh(me2, task2.id)
    assert (gone.status, gone.media_state, gone.video_ref) == (Status.SUCCESS, "failed", None)
    assert gone.result_url.startswith("http://127.0.0.1")


async def test_copies_expire_after_the_retention(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    cdn.files.update({"/v.mp4": MP4, "/f.png": b"png"})
    clock = ManualClock()
    service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock)
    await mirror.tick()
    path = tmp_path / "mirror" / f"{task.id}.video.mp4"
    assert path.exists()
    clock.advance(86400 + 1)
    await mirror.tick()
    assert not path.exists()
    expired = await service.refresh(me, task.id)
    assert (expired.media_state, expired.video_ref) == ("expired", None)


async def test_a_large_file_is_streamed_with_bounded_memory(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    size = 200 * 1024 * 1024
    cdn.generated["/big.mp4"] = size
    cdn.files["/f.png"] = b"png"
    clock = ManualClock()
    service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock, video="/big.mp4")
    tracemalloc.start()
    try:
        await mirror.tick()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "mirror" / f"{task.id}.video.mp4").stat().st_size == size
    assert peak < 32 * 1024 * 1024, f"peak Python allocations {peak / 2**20:.0f} MiB"
    assert (await service.refresh(me, task.id)).media_state == "stored"


async def test_private_and_redirected_sources_are_guarded(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    cdn.files.update({"/v.mp4": MP4, "/f.png": b"png"})
    cdn.redirects["/v.mp4"] = "http://169.254.169.254/latest/meta-data"
    clock = ManualClock()
    service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock)
    await mirror.tick()
    assert (await service.refresh(me, task.id)).media_state == "pending"  # refused, retried
    assert not (tmp_path / "mirror" / f"{task.id}.video.mp4").exists()
    strict = MediaMirror(service, LocalFiles(tmp_path / "mirror"), worker_id="w2", retention_s=60)
    cdn.redirects.clear()
    clock.advance(31)
    await strict.tick()  # loopback is not allowed by default
    assert not (tmp_path / "mirror" / f"{task.id}.video.mp4").exists()


async def test_copies_can_live_in_an_s3_compatible_bucket(
    store: SqlStore, tmp_path: Path, cdn: FileServer
) -> None:
    video = bytes(range(256)) * 48 * 1024  # 12 MiB: a multipart upload
    cdn.files.update({"/v.mp4": video, "/f.png": b"png"})
    s3 = S3Simulator("AKIDTEST", buckets={"media"})
    handle = serve_s3_in_thread(s3)
    try:
        bucket = S3Files(
            "s3://media/reelgate",
            endpoint=handle.endpoint,
            access_key_id="AKIDTEST",
            secret_access_key="secret",
        )
        clock = ManualClock()
        service, mirror, me, task = await succeeded(store, tmp_path, cdn, clock, storage=bucket)
        await mirror.tick()
        kept = await service.refresh(me, task.id)
        assert kept.media_state == "stored"
        name = f"{task.id}.video.mp4"
        assert s3.objects[("media", f"reelgate/{name}")].data == video
        assert any("uploadId" in path for _, path in s3.requests)  # streamed in parts
        assert bucket.local_path(name) is None
        assert await bucket.size(name) == len(video)
        assert b"".join([c async for c in bucket.read(name, 100, 199)]) == video[100:200]
        clock.advance(86400 + 1)
        await mirror.tick()  # retention: deleted from the bucket
        assert ("media", f"reelgate/{name}") not in s3.objects
    finally:
        handle.stop()
