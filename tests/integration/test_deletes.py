"""Deleting a task takes its files with it: every link handed out before answers 404 after the
``deleted``, and the stored copies are gone from disk and from the bucket — on the OpenAI and the
Ark surfaces, for the sandbox's renders and for durable copies in S3. A store that fails keeps
the task (503) rather than answer ``deleted`` over files that still serve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.core.errors import ReelgateError
from reelgate.core.lifecycle import Status
from reelgate.engine.worker import Worker
from reelgate.files import FilesError, LocalFiles, MediaRoots
from reelgate.providers.registry import Registry
from reelgate.service import VideoService
from reelgate.store.sql import SqlStore
from reelgate.testing import ManualClock
from reelgate.testing.s3_simulator import S3Simulator, serve_s3_in_thread
from tests.conftest import LiveServer, ark_gateway
from tests.integration.test_engine import owner
from tests.integration.test_engine_queue import request, upstream

KEY = "ark-delete-key"
SANDBOX = {"model": "sandbox-t2v", "prompt": "gone soon", "duration": 1, "size": "160x120"}


def finished(server: LiveServer, body: dict[str, Any], *, kept: bool = False) -> dict[str, Any]:
    """The task's data once it succeeded (and, with ``kept``, once its durable copy is linked)."""
    with server.client() as c:
        task_id = c.post("/v1/video/generations", json=body).json()["task_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            data: dict[str, Any] = c.get(f"/v1/video/generations/{task_id}").json()["data"]
            assert data["status"] != "failure", data
            if data["status"] == "success" and (not kept or "/mirror/" in data["result_url"]):
                return data
            time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish in time")


def links(data: dict[str, Any]) -> list[str]:
    return [data["result_url"], data["last_frame_url"]]


def test_deleting_revokes_the_sandbox_files_links_on_both_surfaces(
    fresh_server: LiveServer,
) -> None:
    fresh_server.start()
    media = fresh_server.workdir / "data" / "sandbox" / "media"
    for delete in ("/v1/videos/{}", "/api/v3/contents/generations/tasks/{}"):
        data = finished(fresh_server, SANDBOX)
        before = [httpx.get(url) for url in links(data)]
        assert [r.status_code for r in before] == [200, 200]
        files = [media / url.split("?")[0].rsplit("/", 1)[-1] for url in links(data)]
        assert all(f.is_file() for f in files)
        with fresh_server.client() as c:
            gone = c.delete(delete.format(data["task_id"]))
            assert gone.status_code == 200, gone.text
            assert c.get(f"/v1/videos/{data['task_id']}").status_code == 404
        after = [httpx.get(url) for url in links(data)]  # the same links, hours left on them
        assert [r.status_code for r in after] == [404, 404]
        assert {r.json()["code"] for r in after} == {"file_not_found"}
        assert not any(f.exists() for f in files)


@pytest.fixture
def ark_with_bucket(tmp_path: Path) -> Iterator[tuple[LiveServer, S3Simulator]]:
    s3 = S3Simulator("AKIDDEL", buckets={"videos"})
    bucket = serve_s3_in_thread(s3)
    try:
        with ark_gateway(
            tmp_path,
            KEY,
            REELGATE_MEDIA_S3_URL="s3://videos/kept",
            REELGATE_MEDIA_S3_ENDPOINT=bucket.endpoint,
            REELGATE_MEDIA_S3_ACCESS_KEY_ID="AKIDDEL",
            REELGATE_MEDIA_S3_SECRET_ACCESS_KEY="s3-secret-value",
        ) as (server, _sim):
            yield server, s3
    finally:
        bucket.stop()


def test_deleting_revokes_durable_copies_and_removes_them_from_the_bucket(
    ark_with_bucket: tuple[LiveServer, S3Simulator],
) -> None:
    server, s3 = ark_with_bucket
    body = {
        "model": "doubao-seedance-1-0-pro-250528",
        "prompt": "kept, then deleted",
        "metadata": {"return_last_frame": True},
    }
    data = finished(server, body, kept=True)
    assert all("/v1/media/mirror/" in url for url in links(data))
    assert [httpx.get(url).status_code for url in links(data)] == [200, 200]
    keys = {key for _, key in s3.objects if data["task_id"] in key}
    assert keys == {f"kept/{data['task_id']}.video.mp4", f"kept/{data['task_id']}.last_frame.png"}
    with server.client() as c:
        gone = c.delete(f"/v1/videos/{data['task_id']}")
    assert (gone.status_code, gone.json()["deleted"]) == (200, True)
    after = [httpx.get(url) for url in links(data)]
    assert [r.status_code for r in after] == [404, 404]
    assert {r.json()["code"] for r in after} == {"file_not_found"}
    assert not [key for _, key in s3.objects if data["task_id"] in key]


class FailingStore(LocalFiles):
    """A store whose deletes fail while ``failing``."""

    failing = True

    async def delete(self, name: str) -> None:
        if self.failing:
            raise FilesError(f"cannot delete {name}: ConnectionError")
        await super().delete(name)


@pytest.mark.anyio
async def test_a_store_that_cannot_delete_keeps_the_task(store: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock()
    files = FailingStore(tmp_path)
    service = VideoService(
        store,
        Registry([upstream(clock, queued=1, running=1)]),
        media=MediaRoots({"mirror": files}),  # holds the copy's predicted name
        clock=clock,
        monotonic=clock,
    )
    worker = Worker(service, clock=clock)
    me = await owner(service)
    task = await service.create(me, request())
    await worker.tick()
    clock.advance(90)
    await worker.tick()
    assert (await service.get(me, task.id)).status is Status.SUCCESS
    with pytest.raises(ReelgateError) as err:
        await service.delete(me, task.id)
    assert (err.value.http_status, err.value.code) == (503, "storage_unavailable")
    assert (await service.refresh(me, task.id)).deleted_at is None  # still there: retry
    files.failing = False
    assert (await service.delete(me, task.id)).deleted_at is not None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
