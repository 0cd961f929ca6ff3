"""Fidelity: the official volcengine SDK speaks to reelgate's Ark simulator as to Ark itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from volcenginesdkarkruntime import Ark

from reelgate.testing import ArkSimulator, serve_in_thread

KEY = "sdk-key"
MODEL = "doubao-seedance-1-0-pro-250528"


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Iterator[tuple[Any, Clock]]:
    clock = Clock()
    handle = serve_in_thread(
        ArkSimulator(api_keys={KEY}, queued_seconds=10, running_seconds=20, clock=clock)
    )
    yield handle, clock
    handle.stop()


def test_create_get_list_delete(sim: tuple[Any, Clock]) -> None:
    handle, clock = sim
    with Ark(base_url=handle.base_url, api_key=KEY, max_retries=0) as client:
        _exercise(client, handle, clock)


def _exercise(client: Ark, handle: Any, clock: Clock) -> None:
    created = client.content_generation.tasks.create(
        model=MODEL,
        content=[{"type": "text", "text": "a paper boat --rs 720p"}],
        return_last_frame=True,
    )
    assert created.id.startswith("cgt-")
    queued = client.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "another"}]
    )

    task = client.content_generation.tasks.get(task_id=created.id)
    assert (task.id, task.model, task.status) == (created.id, MODEL, "queued")

    clock.now += 40
    done = client.content_generation.tasks.get(task_id=created.id)
    assert done.status == "succeeded"
    assert done.content.video_url.startswith(handle.url)
    assert done.usage.total_tokens == done.usage.completion_tokens > 0

    listing = client.content_generation.tasks.list(
        page_num=1, page_size=10, task_ids=[created.id, queued.id], model=MODEL
    )
    assert listing.total == 2
    assert {i.id for i in listing.items} == {created.id, queued.id}
    only = client.content_generation.tasks.list(status="succeeded")
    assert {i.id for i in only.items} == {created.id, queued.id}

    client.content_generation.tasks.delete(task_id=created.id)  # a finished record: deleted
    assert client.content_generation.tasks.list(task_ids=[created.id]).total == 0


def test_sdk_sees_arks_errors(sim: tuple[Any, Clock]) -> None:
    from volcenginesdkarkruntime._exceptions import ArkAPIError

    handle, _ = sim
    with (
        Ark(base_url=handle.base_url, api_key="wrong", max_retries=0) as client,
        pytest.raises(ArkAPIError) as info,
    ):
        client.content_generation.tasks.get(task_id="cgt-x")
    assert "AuthenticationError" in str(info.value)
