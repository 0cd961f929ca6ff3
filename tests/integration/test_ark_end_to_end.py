"""reelgate with Seedance models, against the Ark simulator over real HTTP on loopback.

A real reelgate server process (SQLite, worker in-process) talks to the shipped Ark simulator; the
tests drive clients through the seed's API and check what reaches the simulator and the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.core.errors import UpstreamUnavailable
from reelgate.providers.ark.provider import ArkProvider
from reelgate.testing import ArkSimulator, serve_in_thread
from reelgate.testing.ark_faults import Fault
from tests.conftest import LiveServer, server_env
from tests.integration.test_seed_api import png_data_uri

ARK_KEY = "ark-test-key"
IMG = png_data_uri()
V2 = "doubao-seedance-2-0-260128"
PRO = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def ark() -> Iterator[Any]:
    sim = ArkSimulator(api_keys={ARK_KEY}, queued_seconds=0.3, running_seconds=0.5)
    handle = serve_in_thread(sim)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def gateway(ark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("ark")
    env = server_env(
        workdir,
        REELGATE_ARK_API_KEY=ARK_KEY,
        REELGATE_ARK_BASE_URL=ark.base_url,
        REELGATE_ARK_TIMEOUT="2",
    )
    server = LiveServer(workdir, env)
    server.start()
    yield server
    server.stop()


def create(server: LiveServer, **body: Any) -> httpx.Response:
    with server.client() as c:
        return c.post("/v1/video/generations", json=body)


def run_to_end(server: LiveServer, **body: Any) -> dict[str, Any]:
    r = create(server, **body)
    assert r.status_code == 200, r.text
    return server.wait_terminal(r.json()["task_id"], timeout=60)


def stats(ark: Any) -> dict[str, Any]:
    return dict(httpx.get(f"{ark.url}/_sim/stats").json())


def fault(ark: Any, **spec: Any) -> None:
    r = httpx.post(f"{ark.url}/_sim/faults", json=spec)
    assert r.status_code < 300, r.text


def test_models_are_listed_with_a_key(gateway: LiveServer) -> None:
    with gateway.client() as c:
        ids = {m["id"] for m in c.get("/v1/models").json()["data"]}
    assert {V2, PRO, "sandbox-t2v"} <= ids


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        (V2, {}),
        (PRO, {"size": "1248x704", "duration": 5}),
        ("doubao-seedance-1-0-lite-t2v-250428", {"metadata": {"frames": 29}}),
        ("seedance-1-0-pro-250528", {"image": IMG}),
        (PRO, {"images": [IMG, IMG]}),
        ("doubao-seedance-1-0-lite-i2v-250428", {"images": [IMG] * 3}),
        (V2, {"prompt": "a cat --rs 480p --dur 4", "metadata": {"return_last_frame": True}}),
    ],
)
def test_each_family_and_mode_succeeds(
    gateway: LiveServer, model: str, extra: dict[str, Any]
) -> None:
    data = run_to_end(gateway, **{"model": model, "prompt": "a paper boat", **extra})
    assert data["status"] == "success", data
    assert data["progress"] == "100%"
    video = httpx.get(data["fail_reason"], timeout=30)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    if extra.get("metadata", {}).get("return_last_frame"):
        assert data["last_frame_url"]


def test_moderation_failure_later(gateway: LiveServer) -> None:
    data = run_to_end(
        gateway,
        model=V2,
        prompt="a boat [sim:fail=OutputVideoSensitiveContentDetected.PolicyViolation]",
    )
    assert data["status"] == "failure"
    assert data["error"]["code"] == "content_moderation"
    assert "OutputVideoSensitiveContentDetected.PolicyViolation" in data["fail_reason"]


def test_moderation_failure_at_create(gateway: LiveServer) -> None:
    data = run_to_end(
        gateway, model=V2, prompt="a boat [sim:reject=InputTextSensitiveContentDetected]"
    )
    assert (data["status"], data["error"]["code"]) == ("failure", "content_moderation")


def test_expired_task_ends(gateway: LiveServer) -> None:
    data = run_to_end(gateway, model=V2, prompt="slow [sim:expire]")
    assert (data["status"], data["error"]["code"]) == ("failure", "expired")


def test_unknown_status_is_never_shown(gateway: LiveServer) -> None:
    r = create(gateway, model=V2, prompt="odd [sim:status=processing]")
    task_id = r.json()["task_id"]
    seen = set()
    with gateway.client() as c:
        for _ in range(20):
            seen.add(c.get(f"/v1/video/generations/{task_id}").json()["data"]["status"])
    assert seen <= {"queued", "in_progress", "success", "failure"}
    assert gateway.wait_terminal(task_id)["status"] in ("success", "failure")


def test_invalid_options_never_reach_ark(gateway: LiveServer, ark: Any) -> None:
    before = stats(ark)
    cases = [
        {"model": PRO, "prompt": "x", "metadata": {"generate_audio": True}},
        {"model": PRO, "prompt": "x", "size": "1000x1000"},
        {"model": V2, "prompt": "x --rs 8k"},
        {"model": V2, "prompt": "x", "metadata": {"service_tier": "flex"}},
    ]
    for body in cases:
        r = create(gateway, **body)
        assert r.status_code == 400, r.text
    assert stats(ark).get("creates", 0) == before.get("creates", 0)


@pytest.mark.parametrize("kind", ["500", "429", "reset", "timeout", "malformed", "slow"])
def test_a_blip_at_create_is_absorbed_without_a_second_task(
    gateway: LiveServer, ark: Any, kind: str
) -> None:
    fault(ark, endpoint="create", kind=kind, count=1)
    prompt = f"blip {kind}"
    data = run_to_end(gateway, model=V2, prompt=prompt)
    assert data["status"] == "success", data
    per_body = stats(ark).get("creates_by_prompt", None)
    if per_body is not None:
        assert per_body.get(prompt, 0) == 1


@pytest.mark.parametrize("kind", ["500", "429", "reset", "malformed", "slow", "timeout"])
def test_a_blip_while_tracking_is_invisible(gateway: LiveServer, ark: Any, kind: str) -> None:
    r = create(gateway, model=V2, prompt=f"tracking {kind}")
    fault(ark, endpoint="any_read", kind=kind, count=1 if kind == "timeout" else 3)
    data = gateway.wait_terminal(r.json()["task_id"], timeout=60)
    assert data["status"] == "success"


def test_the_timeout_bounds_a_whole_answer_not_each_read() -> None:
    # Found by the chaos suite: an answer trickled out a few bytes at a time never tripped
    # httpx's per-read timeout, so one slow batch look-up held the worker's whole round (every
    # submission and look) for as long as the trickle lasted: here about 4 s.
    sim = ArkSimulator(api_keys={ARK_KEY})
    handle = serve_in_thread(sim)
    body = {"model": PRO, "content": [{"type": "text", "text": "one of many"}]}
    ids = [sim.create(ARK_KEY, body).id for _ in range(40)]
    sim.faults.append(Fault("list", "slow", 1))

    async def look() -> tuple[float, str]:
        provider = ArkProvider(ARK_KEY, base_url=handle.base_url, timeout_s=0.5)
        started = time.monotonic()
        try:
            await provider.look_up(ids)
        except UpstreamUnavailable as exc:
            return time.monotonic() - started, exc.code
        finally:
            await provider.close()
        raise AssertionError("the trickled answer was accepted")

    try:
        took, code = asyncio.run(look())
    finally:
        handle.stop()
    assert code == "upstream_timeout"
    assert took < 1.5


def test_seed_examples_work_against_seedance(gateway: LiveServer, tmp_path: Path) -> None:
    from tests.acceptance.test_seed_examples import example, run, substitute

    task_id = create(gateway, model=V2, prompt="seed example").json()["task_id"]
    gateway.wait_terminal(task_id)
    script = tmp_path / "example.py"
    script.write_text(substitute(example("python"), gateway, task_id))
    import sys

    out = run([sys.executable, str(script)], tmp_path)
    assert "状态: success, 进度: 100%" in out
    assert "视频地址: http://127.0.0.1" in out

    failed = create(gateway, model=V2, prompt="x [sim:fail=OutputVideoSensitiveContentDetected]")
    failed_id = failed.json()["task_id"]
    gateway.wait_terminal(failed_id)
    script.write_text(substitute(example("python"), gateway, failed_id))
    out = run([sys.executable, str(script)], tmp_path)
    assert "状态: failure, 进度: 100%" in out
    assert "任务失败: OutputVideoSensitiveContentDetected: " in out


def test_a_bad_account_fails_fast_with_a_clear_code(ark: Any, tmp_path: Path) -> None:
    server = LiveServer(
        tmp_path,
        server_env(tmp_path, REELGATE_ARK_API_KEY="wrong-key", REELGATE_ARK_BASE_URL=ark.base_url),
    )
    server.start()
    try:
        data = run_to_end(server, model=V2, prompt="nobody home")
    finally:
        server.stop()
    assert (data["status"], data["error"]["code"]) == ("failure", "upstream_auth_failed")
    assert ARK_KEY not in data["fail_reason"]
    assert "wrong-key" not in data["fail_reason"]


def test_a_task_cancelled_upstream_ends_as_cancelled(gateway: LiveServer, ark: Any) -> None:
    import json
    import subprocess
    import sys
    import time

    task_id = create(gateway, model=V2, prompt="long wait [sim:queued=60]").json()["task_id"]
    deadline = time.monotonic() + 20
    upstream = None
    while upstream is None:
        assert time.monotonic() < deadline, "never submitted"
        shown = subprocess.run(
            [sys.executable, "-m", "reelgate", "task", "get", task_id],
            cwd=gateway.workdir,
            env=gateway.env,
            capture_output=True,
            text=True,
            check=True,
        )
        upstream = json.loads(shown.stdout)["upstream_id"]
        time.sleep(0.1)
    r = httpx.delete(
        f"{ark.base_url}/contents/generations/tasks/{upstream}",
        headers={"Authorization": f"Bearer {ARK_KEY}"},
    )
    assert r.status_code == 200
    data = gateway.wait_terminal(task_id)
    assert (data["status"], data["error"]["code"]) == ("failure", "cancelled")
    assert data["progress"] == "100%"
