"""A provider installed as a separate package works with no change to reelgate: the suite builds
and installs ``tests/plugins/acme`` (a made-up aggregator: its provider, simulator and contract
target, found through the ``reelgate.providers`` entry point) into a directory of its own, then
runs reelgate with that directory on its path.

With it, a model with two homes: Seedance 1.0 Pro on Ark (its studio) and on Acme (which lacks
some of Ark's options). A task fails over from a disabled Ark channel to Acme with one upstream
create, and a request using an option only Ark has is routed to Ark alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.testing import ArkSimulator, serve_in_thread
from tests.conftest import REPO, LiveServer, free_port, server_env

PLUGIN = REPO / "tests" / "plugins" / "acme"
ACME_KEY = "acme-key"
ARK_KEY = "ark-key"
ADMIN = "plugin-admin"
SEEDANCE = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in, built and installed with pip into a directory of its own (from a copy of its
    source: a build leaves files beside the source it builds)."""
    source = tmp_path_factory.mktemp("acme-source") / "acme"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert list(target.glob("reelgate_acme-*.dist-info/entry_points.txt"))
    return target


def with_site(site: Path, env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), env.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def acme(site: Path) -> Iterator[str]:
    """``reelgate simulate acme``: the plug-in's simulator, started by reelgate's own CLI."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "simulate", "acme", "--port", str(port),
         "--key", ACME_KEY, "--queued-seconds", "0.2", "--running-seconds", "0.3"],
        env=with_site(site, dict(os.environ)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("acme simulator on "), line
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/_sim/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()


@pytest.fixture
def ark() -> Iterator[tuple[ArkSimulator, str]]:
    sim = ArkSimulator(api_keys={ARK_KEY}, queued_seconds=0.2, running_seconds=0.3)
    handle = serve_in_thread(sim)
    try:
        yield sim, handle.base_url
    finally:
        handle.stop()


@pytest.fixture
def gateway(
    tmp_path: Path, site: Path, acme: str, ark: tuple[ArkSimulator, str]
) -> Iterator[LiveServer]:
    """Ark (priority 10) and Acme (priority 0) channels; Acme's only from REELGATE_CHANNELS."""
    httpx.post(f"{acme}/_sim/reset")
    channels = [{"name": "acme-1", "provider": "acme", "secret": ACME_KEY, "base_url": acme}]
    env = server_env(
        tmp_path,
        REELGATE_ARK_API_KEY=ARK_KEY,
        REELGATE_ARK_BASE_URL=ark[1],
        REELGATE_ARK_PRIORITY="10",
        REELGATE_CHANNELS=json.dumps(channels),
        REELGATE_ADMIN_TOKEN=ADMIN,
    )
    server = LiveServer(tmp_path, with_site(site, env))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def admin(server: LiveServer) -> httpx.Client:
    return server.client(ADMIN)


def result_url(c: httpx.Client, task_id: str) -> str:
    return str(c.get(f"/v1/video/generations/{task_id}").json()["data"]["result_url"])


def creates(acme: str) -> int:
    return int(httpx.get(f"{acme}/_sim/stats").json()["creates"])


def test_the_installed_provider_is_listed_and_serves_a_task_end_to_end(
    gateway: LiveServer, acme: str
) -> None:
    with gateway.client() as c:
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models["acme-v1"]["provider"] == "acme"
        offered = [(o["provider"], o["model"], o["home"]) for o in models[SEEDANCE]["offerings"]]
        assert offered == [("ark", SEEDANCE, True), ("acme", "bytedance/seedance-1.0-pro", False)]
        made = c.post(
            "/v1/video/generations", json={"model": "acme-v1", "prompt": "a kite", "duration": 2}
        )
        assert made.status_code == 200, made.text
        task_id = made.json()["task_id"]
        assert gateway.wait_terminal(task_id)["status"] == "success"
        # The durable copy: at reelgate's own signed link, and at /content.
        deadline = time.monotonic() + 60
        while "/v1/media/mirror/" not in (link := result_url(c, task_id)):
            assert time.monotonic() < deadline, link
            time.sleep(0.1)
        video = httpx.get(link)
        assert (video.status_code, video.content[4:8]) == (200, b"ftyp")
        assert c.get(f"/v1/video/generations/{task_id}/content").content == video.content
    assert creates(acme) == 1


def test_a_model_fails_over_from_its_disabled_studio_to_the_aggregator_with_one_create(
    gateway: LiveServer, acme: str, ark: tuple[ArkSimulator, str]
) -> None:
    with admin(gateway) as a:
        off = a.post("/v1/admin/channels/default/disable", json={"reason": "maintenance"})
        assert off.status_code == 200, off.text
    with gateway.client() as c:
        made = c.post("/v1/video/generations", json={"model": SEEDANCE, "prompt": "a fox"})
        assert made.status_code == 200, made.text
        done = gateway.wait_terminal(made.json()["task_id"])
        assert done["status"] == "success", done
        # An option only Ark has: no channel that can honour it is up.
        fixed = c.post(
            "/v1/video/generations",
            json={"model": SEEDANCE, "prompt": "a fox", "metadata": {"camera_fixed": True}},
        )
        assert (fixed.status_code, fixed.json()["code"]) == (503, "no_channel_available")
    assert (creates(acme), len(ark[0].tasks)) == (1, 0)


def test_an_auth_failure_on_the_studio_moves_the_task_on_and_options_pick_the_studio(
    tmp_path: Path, site: Path, acme: str, ark: tuple[ArkSimulator, str]
) -> None:
    """Ark answers 401 (a key it never issued): its channel is disabled by its health and the
    task goes to Acme, created once; once Ark works, a camera_fixed task goes to Ark only,
    even with Acme first by priority."""
    httpx.post(f"{acme}/_sim/reset")
    channels = [
        {"name": "acme-1", "provider": "acme", "secret": ACME_KEY, "base_url": acme},
        {"name": "ark-bad", "provider": "ark", "secret": "revoked", "base_url": ark[1],
         "priority": 10},
        {"name": "ark-good", "provider": "ark", "secret": ARK_KEY, "base_url": ark[1],
         "priority": -10},
    ]  # fmt: skip
    env = server_env(tmp_path, REELGATE_CHANNELS=json.dumps(channels), REELGATE_ADMIN_TOKEN=ADMIN)
    server = LiveServer(tmp_path, with_site(site, env))
    server.start()
    try:
        with server.client() as c:
            made = c.post("/v1/video/generations", json={"model": SEEDANCE, "prompt": "an owl"})
            assert made.status_code == 200, made.text
            assert server.wait_terminal(made.json()["task_id"])["status"] == "success"
            with admin(server) as a:
                bad = a.get("/v1/admin/channels/ark-bad").json()["data"]
            assert (bad["state"], bad["disabled_by"]) == ("disabled", "health")
            assert (creates(acme), len(ark[0].tasks)) == (1, 0)
            fixed = c.post(
                "/v1/video/generations",
                json={"model": SEEDANCE, "prompt": "an owl", "metadata": {"camera_fixed": True}},
            )
            assert fixed.status_code == 200, fixed.text
            assert server.wait_terminal(fixed.json()["task_id"])["status"] == "success"
        assert (creates(acme), len(ark[0].tasks)) == (1, 1)
    finally:
        server.stop()


def test_the_installed_provider_passes_the_contract_suite(site: Path) -> None:
    """The shipped suite runs over every declared provider: with the plug-in on the path, that
    includes Acme, with no list to edit anywhere."""
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/contract/test_providers.py", "-k", "acme",
         "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=REPO,
        env=with_site(site, dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    summary = ran.stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
