"""The Ark simulator itself, over real HTTP: the documented behaviours reelgate relies on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.testing import ArkSimulator, ManualClock, serve_in_thread

KEY = "k"
PRO = "doubao-seedance-1-0-pro-250528"
TASKS = "/contents/generations/tasks"


@pytest.fixture
def ark() -> Iterator[tuple[httpx.Client, ManualClock, ArkSimulator]]:
    clock = ManualClock()
    sim = ArkSimulator(api_keys={KEY}, queued_seconds=10, running_seconds=20, clock=clock)
    handle = serve_in_thread(sim)
    with httpx.Client(
        base_url=handle.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ) as client:
        yield client, clock, sim
    handle.stop()


def create(client: httpx.Client, text: str = "a boat", **extra: Any) -> str:
    r = client.post(
        TASKS, json={"model": PRO, "content": [{"type": "text", "text": text}], **extra}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_timeline_on_an_injected_clock(ark: Any) -> None:
    client, clock, _ = ark
    task_id = create(client, resolution="720p", ratio="16:9", duration=5)
    assert client.get(f"{TASKS}/{task_id}").json()["status"] == "queued"
    clock.advance(11)
    assert client.get(f"{TASKS}/{task_id}").json()["status"] == "running"
    clock.advance(20)
    done = client.get(f"{TASKS}/{task_id}").json()
    assert done["status"] == "succeeded"
    assert done["usage"] == {"completion_tokens": 108900, "total_tokens": 108900}
    video = httpx.get(done["content"]["video_url"])
    assert (video.status_code, video.content[4:8]) == (200, b"ftyp")
    clock.advance(25 * 3600)
    assert httpx.get(done["content"]["video_url"]).status_code == 403  # links last 24 h


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"content": [{"type": "text", "text": "x"}]}, 400, "MissingParameter"),
        (
            {"model": "nope", "content": [{"type": "text", "text": "x"}]},
            404,
            "InvalidEndpointOrModel.NotFound",
        ),
        (
            {"model": PRO, "content": [{"type": "text", "text": "x"}], "bogus": 1},
            400,
            "InvalidParameter.UnsupportedParameter",
        ),
        (
            {
                "model": "doubao-seedance-1-0-lite-t2v-250428",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:,"}, "role": "first_frame"}
                ],
            },
            400,
            "InvalidParameter",
        ),
        (
            {
                "model": PRO,
                "content": [
                    {"type": "text", "text": "x [sim:reject=InputTextSensitiveContentDetected]"}
                ],
            },
            400,
            "InputTextSensitiveContentDetected",
        ),
    ],
)
def test_error_bodies(ark: Any, body: dict[str, Any], status: int, code: str) -> None:
    client, _, _ = ark
    r = client.post(TASKS, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert set(err) == {"code", "message", "param", "type"}
    assert err["code"] == code
    assert "Request id:" in err["message"]
    assert r.headers["x-request-id"]


def test_auth(ark: Any) -> None:
    client, _, _ = ark
    r = client.get(TASKS, headers={"Authorization": "Bearer wrong"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "AuthenticationError")


def test_cancel_rules(ark: Any) -> None:
    client, clock, _ = ark
    queued = create(client)
    assert client.delete(f"{TASKS}/{queued}").status_code == 200
    assert client.get(f"{TASKS}/{queued}").json()["status"] == "cancelled"
    running = create(client)
    clock.advance(11)
    assert client.delete(f"{TASKS}/{running}").status_code == 400
    clock.advance(30)
    assert client.delete(f"{TASKS}/{running}").status_code == 200  # finished: record deleted
    assert client.get(f"{TASKS}/{running}").status_code == 404


def test_list_filters_paging_and_window(ark: Any) -> None:
    client, clock, _ = ark
    old = create(client)
    clock.advance(8 * 24 * 3600)
    ids = [create(client) for _ in range(3)]
    listing = client.get(TASKS, params=[("page_size", 500)]).json()
    assert listing["total"] == 3  # the 8-day-old task is outside the 7-day window
    assert old not in {i["id"] for i in listing["items"]}
    picked = client.get(TASKS, params=[("filter.task_ids", ids[0]), ("filter.task_ids", ids[2])])
    assert {i["id"] for i in picked.json()["items"]} == {ids[0], ids[2]}
    page = client.get(TASKS, params={"page_size": 2, "page_num": 2}).json()
    assert (page["total"], len(page["items"])) == (3, 1)
    assert client.get(TASKS, params={"filter.status": "running"}).json()["total"] == 0
    assert client.get(TASKS, params={"page_size": 501}).status_code == 400


def test_queued_cap(ark: Any) -> None:
    client, _, _ = ark
    for _ in range(120):
        create(client)
    r = client.post(TASKS, json={"model": PRO, "content": [{"type": "text", "text": "x"}]})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "QuotaExceeded")


@pytest.mark.parametrize(
    ("kind", "error"),
    [("reset", httpx.RemoteProtocolError), ("malformed", None), ("500", None), ("429", None)],
)
def test_faults(ark: Any, kind: str, error: type[Exception] | None) -> None:
    client, _, sim = ark
    httpx.post(
        str(client.base_url).removesuffix("/api/v3/") + "/_sim/faults",
        json={"endpoint": "list", "kind": kind, "count": 1},
    )
    if error is not None:
        with pytest.raises(error):
            client.get(TASKS)
    else:
        r = client.get(TASKS)
        if kind == "malformed":
            with pytest.raises(ValueError):  # noqa: PT011 - json's own error
                r.json()
        else:
            assert r.status_code == int(kind)
    assert client.get(TASKS).status_code == 200  # one fault, then normal service
    assert sim.calls["list"] == 2


def test_execution_expires_after(ark: Any) -> None:
    client, clock, sim = ark
    sim.queued_seconds = 7200
    task_id = create(client, execution_expires_after=3600)
    clock.advance(3601)
    assert client.get(f"{TASKS}/{task_id}").json()["status"] == "expired"


def test_rpm_limit_per_key(ark: Any) -> None:
    client, clock, sim = ark
    sim.rpm = 3
    for _ in range(3):
        assert client.get(TASKS).status_code == 200
    r = client.get(TASKS)
    assert (r.status_code, r.json()["error"]["code"]) == (429, "APIAccountRpmRateLimitExceeded")
    clock.advance(61)
    assert client.get(TASKS).status_code == 200


def test_callbacks_on_every_change_with_retries(ark: Any) -> None:
    client, clock, sim = ark
    sim.callback_retry_s = 0.05
    received: list[tuple[str, int]] = []

    async def hook(request: Request) -> Response:
        payload = await request.json()
        # The first delivery of the final status fails: the simulator must retry it.
        failing = payload["status"] == "succeeded" and not any(
            s == "succeeded" for s, _ in received
        )
        received.append((payload["status"], 500 if failing else 200))
        return Response(status_code=500 if failing else 200)

    receiver = serve_in_thread(
        _Receiver(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    )
    try:
        create(client, callback_url=f"{receiver.url}/hook")
        for step, seen in ((0, 1), (11, 2), (20, 3)):
            clock.advance(step)
            _wait_for(lambda n=seen: len({s for s, _ in received}) >= n)
        _wait_for(lambda: received.count(("succeeded", 200)) == 1)
    finally:
        receiver.stop()
    assert [s for s, _ in received] == ["queued", "running", "succeeded", "succeeded"]
    attempts = [c["attempt"] for c in sim.callbacks if c["status"] == "succeeded"]
    assert attempts == [1, 2]


class _Receiver(ArkSimulator):
    """serve_in_thread runs anything with an ``app``; reuse it for a callback receiver."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(api_keys=set())
        self._app = app

    @property
    def app(self) -> Starlette:  # type: ignore[override]
        return self._app


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        (PRO, {"duration": 13}, "duration"),
        (PRO, {"duration": -1}, "duration"),
        (PRO, {"resolution": "4k"}, "resolution"),
        (PRO, {"frames": 30}, "frames"),
        (PRO, {"generate_audio": True}, "generate_audio"),
        ("doubao-seedance-2-0-260128", {"service_tier": "flex"}, "service_tier"),
        ("doubao-seedance-2-0-260128", {"frames": 29}, "frames"),
        ("doubao-seedance-1-5-pro-251215", {"draft": True, "resolution": "720p"}, "draft"),
        (PRO, {"execution_expires_after": 60}, "execution_expires_after"),
        (PRO, {"priority": 1}, "priority"),
        (PRO, {"watermark": "yes"}, "watermark"),
        (PRO, {"safety_identifier": "x" * 65}, "safety_identifier"),
    ],
)
def test_option_rules(ark: Any, model: str, extra: dict[str, Any], param: str) -> None:
    client, _, _ = ark
    r = client.post(
        TASKS, json={"model": model, "content": [{"type": "text", "text": "x"}], **extra}
    )
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("InvalidParameter", param)


def test_valid_options_pass(ark: Any) -> None:
    client, _, _ = ark
    create(client, duration=12, resolution="1080p", frames=289, seed=7, watermark=False)
    r = client.post(
        TASKS,
        json={
            "model": "dreamina-seedance-2-5-260628",
            "duration": -1,
            "content": [{"type": "text", "text": "x"}],
            "priority": 9,
            "output_format": "mov",
            "resolution": "4k",
        },
    )
    assert r.status_code == 200, r.text


def test_time_scale_runs_long_tasks_fast(ark: Any) -> None:
    client, clock, sim = ark
    sim.time_scale = 100.0  # 30 s in the simulator's world per 0.3 s of the clock
    task_id = create(client)
    clock.advance(0.11)
    assert client.get(f"{TASKS}/{task_id}").json()["status"] == "running"
    clock.advance(0.2)
    assert client.get(f"{TASKS}/{task_id}").json()["status"] == "succeeded"
