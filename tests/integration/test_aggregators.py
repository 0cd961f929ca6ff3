"""One model, several homes, through a live gateway: Seedance 1.0 Pro on Ark (its studio), on
fal and on Replicate (aggregators with fewer options), each simulator over real HTTP.

A Seedance task whose Ark channel is disabled or answers 429s is served by fal with one upstream
create in all; a request using an option only Ark has goes to Ark alone; with Ark and fal away,
Replicate serves it. Each task is pre-charged the most expensive of its offerings and settled on
the price of the provider that served it. Callbacks are on (``REELGATE_PUBLIC_URL``): both
aggregators post signed webhooks to reelgate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.core import pricing
from reelgate.testing import ArkSimulator, Fault, serve_in_thread
from reelgate.testing.fal_simulator import FalSimulator
from reelgate.testing.replicate_simulator import ReplicateSimulator
from tests.conftest import LiveServer, server_env

ARK_KEY, FAL_KEY, REPLICATE_KEY = "ark-key", "fal-key", "r8_replicate-key"
ADMIN = "aggregators-admin"
SEEDANCE = "doubao-seedance-1-0-pro-250528"
ARK_PER_MILLION = 15_000_000
FAL_PER_S = 200_000
REPLICATE_PER_S = 300_000
PRICES = {
    SEEDANCE: [
        {"per_million_tokens": ARK_PER_MILLION},
        {"provider": "fal", "per_second": FAL_PER_S},
        {"provider": "replicate", "per_second": REPLICATE_PER_S},
    ]
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Any]]:
    ark = ArkSimulator(api_keys={ARK_KEY}, queued_seconds=0.2, running_seconds=0.3)
    fal = FalSimulator(api_keys={FAL_KEY}, queued_seconds=0.2, running_seconds=0.3)
    replicate = ReplicateSimulator(
        api_keys={REPLICATE_KEY}, queued_seconds=0.2, running_seconds=0.3
    )
    handles = [serve_in_thread(s) for s in (ark, fal, replicate)]
    yield {
        "ark": ark,
        "fal": fal,
        "replicate": replicate,
        "urls": [h.base_url for h in handles],
    }
    for handle in handles:
        handle.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, Any]) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("aggregators")
    ark_url, fal_url, replicate_url = sims["urls"]
    channels = [
        {"name": "ark-1", "provider": "ark", "secret": ARK_KEY, "base_url": ark_url,
         "priority": 10},
        {"name": "fal-1", "provider": "fal", "secret": FAL_KEY, "base_url": fal_url,
         "options": {"jwks_url": f"{fal_url}/.well-known/jwks.json"}, "priority": 5,
         "max_in_flight": 4},
        {"name": "replicate-1", "provider": "replicate", "secret": REPLICATE_KEY,
         "base_url": replicate_url, "priority": 0},
    ]  # fmt: skip
    server = LiveServer(workdir, {})
    server.env = server_env(
        workdir,
        REELGATE_CHANNELS=json.dumps(channels),
        REELGATE_ADMIN_TOKEN=ADMIN,
        REELGATE_PUBLIC_URL=f"http://127.0.0.1:{server.port}",
        REELGATE_PRICES=json.dumps(PRICES),
        REELGATE_CHANNEL_REFRESH_SECONDS="0.2",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh(sims: dict[str, Any], gateway: LiveServer) -> Iterator[dict[str, Any]]:
    """Every simulator reset and every channel enabled, before and after each test."""

    def reset() -> None:
        for name in ("ark", "fal", "replicate"):
            sims[name].reset()
        with gateway.client(ADMIN) as a:
            for channel in ("ark-1", "fal-1", "replicate-1"):
                assert a.post(f"/v1/admin/channels/{channel}/enable").status_code == 200

    reset()
    yield sims
    reset()


def disable(gateway: LiveServer, *channels: str) -> None:
    with gateway.client(ADMIN) as a:
        for channel in channels:
            off = a.post(f"/v1/admin/channels/{channel}/disable", json={"reason": "test"})
            assert off.status_code == 200, off.text
    time.sleep(0.5)  # every process re-reads its channels (REELGATE_CHANNEL_REFRESH_SECONDS)


def creates(sims: dict[str, Any]) -> dict[str, int]:
    return {name: sims[name].created for name in ("ark", "fal", "replicate")}


def create(gateway: LiveServer, body: dict[str, Any]) -> str:
    with gateway.client() as c:
        made = c.post("/v1/video/generations", json=body)
    assert made.status_code == 200, made.text
    return str(made.json()["task_id"])


def durable(gateway: LiveServer, task_id: str) -> bytes:
    """The durable copy of a finished task's video (reelgate's own signed link)."""
    deadline = time.monotonic() + 60
    with gateway.client() as c:
        while True:
            link = c.get(f"/v1/video/generations/{task_id}").json()["data"]["result_url"]
            if "/v1/media/mirror/" in link:
                break
            assert time.monotonic() < deadline, link
            time.sleep(0.1)
    video = httpx.get(link)
    assert (video.status_code, video.content[4:8]) == (200, b"ftyp")
    return video.content


def ledger(gateway: LiveServer, task_id: str) -> dict[str, dict[str, Any]]:
    with gateway.client(ADMIN) as a:
        rows = a.get("/v1/admin/ledger", params={"limit": 100}).json()["data"]
    return {r["kind"]: r for r in rows if r["task_id"] == task_id}


def test_models_list_every_home_of_seedance(gateway: LiveServer) -> None:
    with gateway.client() as c:
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
    offered = [(o["provider"], o["model"], o["home"]) for o in models[SEEDANCE]["offerings"]]
    assert offered == [
        ("ark", SEEDANCE, True),
        ("fal", "fal-ai/bytedance/seedance/v1/pro/text-to-video", False),
        ("replicate", "bytedance/seedance-1-pro", False),
    ]
    # A model with no home here is served by the aggregators alone.
    kling = [(o["provider"], o["home"]) for o in models["kling-v2-1-master"]["offerings"]]
    assert kling == [("fal", False), ("replicate", False)]


def test_seedance_fails_over_to_fal_from_a_disabled_studio_with_one_create(
    gateway: LiveServer, fresh: dict[str, Any]
) -> None:
    disable(gateway, "ark-1")
    task_id = create(gateway, {"model": SEEDANCE, "prompt": "a fox", "duration": 4})
    done = gateway.wait_terminal(task_id)
    assert done["status"] == "success", done
    durable(gateway, task_id)
    assert creates(fresh) == {"ark": 0, "fal": 1, "replicate": 0}
    # Held at the most expensive offering (Ark's 1080p tokens), settled on fal's per second.
    rows = ledger(gateway, task_id)
    tokens = pricing.ceil_div(1920 * 1088 * (24 * 4 + 1), 1024)  # Ark's 1080p default
    held = -rows["precharge"]["amount"]
    assert held == max(pricing.ceil_div(tokens * ARK_PER_MILLION, 10**6), 4 * REPLICATE_PER_S)
    settle = rows["settle"]
    assert (settle["unit"], settle["unit_price"]) == ("per_second", FAL_PER_S)
    assert held - settle["amount"] == 4 * FAL_PER_S


def test_seedance_goes_to_fal_while_the_studio_answers_429(
    gateway: LiveServer, fresh: dict[str, Any]
) -> None:
    fresh["ark"].faults.append(Fault("create", "429", count=1000, retry_after=120))
    task_id = create(gateway, {"model": SEEDANCE, "prompt": "an owl"})
    assert gateway.wait_terminal(task_id)["status"] == "success"
    assert creates(fresh) == {"ark": 0, "fal": 1, "replicate": 0}
    assert fresh["ark"].calls["create"] >= 1  # it was tried, refused, and cooled down
    with gateway.client(ADMIN) as a:
        ark = a.get("/v1/admin/channels/ark-1").json()["data"]
    assert ark["state"] == "cooling", ark


def test_an_option_only_the_studio_has_is_routed_to_the_studio(
    gateway: LiveServer, fresh: dict[str, Any]
) -> None:
    """``watermark`` is Ark's alone: while Ark answers 429 the task waits for Ark (a task
    without it would go to fal at once), and with Ark down nothing can honour it (503)."""
    fresh["ark"].faults.append(Fault("create", "429", count=2, retry_after=1))
    body = {"model": SEEDANCE, "prompt": "a heron", "metadata": {"watermark": True}}
    task_id = create(gateway, body)
    assert gateway.wait_terminal(task_id)["status"] == "success"
    assert fresh["ark"].calls["create"] == 3  # refused twice, then created
    assert creates(fresh) == {"ark": 1, "fal": 0, "replicate": 0}
    disable(gateway, "ark-1")
    with gateway.client() as c:
        refused = c.post("/v1/video/generations", json=body)
    assert (refused.status_code, refused.json()["code"]) == (503, "no_channel_available")
    assert creates(fresh) == {"ark": 1, "fal": 0, "replicate": 0}


def test_replicate_serves_seedance_when_ark_and_fal_are_away(
    gateway: LiveServer, fresh: dict[str, Any]
) -> None:
    disable(gateway, "ark-1", "fal-1")
    task_id = create(gateway, {"model": SEEDANCE, "prompt": "a crane", "duration": 3})
    assert gateway.wait_terminal(task_id)["status"] == "success"
    durable(gateway, task_id)
    assert creates(fresh) == {"ark": 0, "fal": 0, "replicate": 1}
    settle = ledger(gateway, task_id)["settle"]
    assert (settle["unit"], settle["unit_price"]) == ("per_second", REPLICATE_PER_S)
    prediction = next(iter(fresh["replicate"].predictions.values()))
    assert prediction.deadline_s is not None  # Cancel-After, from the task's deadline
    assert prediction.events == ("completed",)
    assert fresh["replicate"].deliveries, "Replicate posted its completed webhook"
    assert all(d["http_status"] == 200 for d in fresh["replicate"].deliveries)


def test_fal_only_models_end_to_end_with_a_signed_webhook(
    gateway: LiveServer, fresh: dict[str, Any], tmp_path: Path
) -> None:
    task_id = create(
        gateway, {"model": "kling-v2-1-master", "prompt": "a river", "metadata": {"ratio": "9:16"}}
    )
    assert gateway.wait_terminal(task_id)["status"] == "success"
    durable(gateway, task_id)
    request = next(iter(fresh["fal"].requests.values()))
    assert request.endpoint == "fal-ai/kling-video/v2.1/master/text-to-video"
    assert request.body["aspect_ratio"] == "9:16"
    assert request.body["duration"] == "5"
    assert f"/v1/callbacks/fal/{task_id}/" in request.webhook
    assert "fal_app=fal-ai/kling-video" in request.webhook
    assert [d["http_status"] for d in fresh["fal"].deliveries] == [200]


@pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
@pytest.mark.parametrize(
    ("model", "away", "served_by"),
    [("kling-v2-1-master", (), "fal"), ("MiniMax-Hailuo-02", ("fal-1",), "replicate")],
)
def test_the_openai_sdk_gets_a_durable_mp4_from_each_aggregator(
    gateway: LiveServer,
    fresh: dict[str, Any],
    tmp_path: Path,
    model: str,
    away: tuple[str, ...],
    served_by: str,
) -> None:
    from openai import OpenAI

    from reelgate.render import probe_video

    disable(gateway, *away)
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0) as c:
        video = c.videos.create_and_poll(
            model=model,  # type: ignore[arg-type]
            prompt="a paper lantern on a lake",
            seconds="10" if served_by == "fal" else "6",  # type: ignore[arg-type]
            poll_interval_ms=100,
        )
        assert video.status == "completed", video
        durable(gateway, video.id)
        (tmp_path / "v.mp4").write_bytes(c.videos.download_content(video.id).read())
    assert probe_video(tmp_path / "v.mp4").frames > 0
    assert {k: v for k, v in creates(fresh).items() if v} == {served_by: 1}


def test_fal_never_holds_more_than_the_channels_concurrency(
    gateway: LiveServer, fresh: dict[str, Any]
) -> None:
    """fal runs an account's requests a few at a time (2 for a new account, here 4): reelgate
    keeps the rest in its own queue instead of piling them up at fal."""
    disable(gateway, "replicate-1")
    ids = [create(gateway, {"model": "kling-v2-1-master", "prompt": f"kite {i}"}) for i in range(7)]
    assert all(gateway.wait_terminal(i)["status"] == "success" for i in ids)
    sim: FalSimulator = fresh["fal"]
    spans = []
    for request in sim.requests.values():
        _, end = sim._plan(request.key)[request.id]
        spans.append((request.created_at, end))
    most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert len(spans) == 7
    assert 1 < most <= 4, most  # without the cap all 7 would run at once
    from reelgate.providers.fal import SPEC

    assert SPEC.default_caps.max_in_flight == 2
