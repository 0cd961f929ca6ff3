"""Channels through a live reelgate and the Ark simulator over real HTTP: an admin adds a
channel (its key encrypted at rest), an overdue account is disabled with its reason and its
tasks fail over, a probe brings it back — and no key ever shows in a response, a log line or the
database file. Webhook signing secrets are sealed at rest with the same key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks

from reelgate.testing import ArkSimulator, serve_in_thread
from tests.conftest import LiveServer, server_env
from tests.receiver import Receiver

MODEL = "doubao-seedance-1-0-pro-250528"
KEY_MAIN = "ark-main-7f3e9c1d55aa"  # from settings
KEY_BACKUP = "ark-backup-91d2aa6b3c0e"  # added through the admin API
KEY_ROTATED = "ark-rotated-5e8f0b2d7c41"
ADMIN = "admin-secret-channels"
ENCRYPTION = "a long passphrase for channel keys"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[ArkSimulator, Any]]:
    simulator = ArkSimulator(
        api_keys={KEY_MAIN, KEY_BACKUP, KEY_ROTATED}, queued_seconds=0.2, running_seconds=0.3
    )
    handle = serve_in_thread(simulator)
    yield simulator, handle
    handle.stop()


@pytest.fixture
def gateway(sim: tuple[ArkSimulator, Any], tmp_path: Path) -> Iterator[LiveServer]:
    _, handle = sim
    server = LiveServer(
        tmp_path,
        server_env(
            tmp_path,
            REELGATE_ARK_API_KEY=KEY_MAIN,
            REELGATE_ARK_BASE_URL=handle.base_url,
            REELGATE_ADMIN_TOKEN=ADMIN,
            REELGATE_ENCRYPTION_KEY=ENCRYPTION,
            REELGATE_LOG_LEVEL="debug",
        ),
    )
    server.start()
    yield server
    server.stop()


def admin(server: LiveServer) -> httpx.Client:
    return server.client(ADMIN)


def scanned(texts: list[str], *secrets: str) -> list[str]:
    return [s for s in secrets for t in texts if s in t]


def test_failover_to_an_admin_channel_and_back_with_no_key_anywhere(
    sim: tuple[ArkSimulator, Any], gateway: LiveServer, tmp_path: Path
) -> None:
    simulator, handle = sim
    seen: list[str] = []
    with admin(gateway) as a, gateway.client() as c:
        added = a.post(
            "/v1/admin/channels",
            json={
                "name": "backup",
                "provider": "ark",
                "api_key": KEY_BACKUP,
                "base_url": handle.base_url,
                "priority": -1,
                "models": [MODEL],
            },
        )
        seen.append(added.text)
        assert added.status_code == 201, added.text
        view = added.json()["data"]
        assert (view["name"], view["source"], view["state"]) == ("backup", "admin", "active")
        assert view["key_fingerprint"].startswith("sha256:")
        assert view["usable_here"] is True

        simulator.overdue_keys.add(KEY_MAIN)  # the main account runs out of credit
        ids = [
            c.post("/v1/video/generations", json={"model": MODEL, "prompt": f"p{i}"}).json()[
                "task_id"
            ]
            for i in range(3)
        ]
        results = [gateway.wait_terminal(t, timeout=60) for t in ids]
        assert [r["status"] for r in results] == ["success"] * 3
        keys = Counter(
            t.key for t in simulator.tasks.values() if t.body["content"][0]["text"].startswith("p")
        )
        assert keys == Counter({KEY_BACKUP: 3})

        listed = a.get("/v1/admin/channels")
        seen.append(listed.text)
        states = {ch["name"]: ch for ch in listed.json()["data"]}
        assert states["default"]["state"] == "disabled"
        assert states["default"]["disabled_by"] == "health"
        assert "upstream_account_error" in states["default"]["disabled_reason"]
        assert states["default"]["source"] == "config"
        assert states["backup"]["state"] == "active"

        # Still overdue: a probe fails and the channel stays disabled.
        probe = a.post("/v1/admin/channels/default/probe")
        seen.append(probe.text)
        assert probe.json()["data"]["probe"]["ok"] is False
        assert probe.json()["data"]["state"] == "disabled"
        simulator.overdue_keys.discard(KEY_MAIN)  # topped up
        probe = a.post("/v1/admin/channels/default/probe")
        seen.append(probe.text)
        assert probe.json()["data"]["probe"]["ok"] is True
        assert probe.json()["data"]["state"] == "active"
        back = c.post("/v1/video/generations", json={"model": MODEL, "prompt": "q-main"}).json()
        assert gateway.wait_terminal(back["task_id"])["status"] == "success"
        assert [
            t.key for t in simulator.tasks.values() if t.body["content"][0]["text"] == "q-main"
        ] == [KEY_MAIN]

        # A new key for the admin channel: accepted, never echoed.
        rotated = a.patch("/v1/admin/channels/backup", json={"api_key": KEY_ROTATED})
        seen.append(rotated.text)
        assert rotated.status_code == 200
        assert rotated.json()["data"]["key_fingerprint"] != view["key_fingerprint"]
        one = a.get("/v1/admin/channels/backup")
        seen.append(one.text)
        assert one.status_code == 200

    texts = [*seen, (tmp_path / "server.log").read_text(), gateway.output]
    assert scanned(texts, KEY_MAIN, KEY_BACKUP, KEY_ROTATED) == []
    # At rest: the database holds the admin channel's key only encrypted.
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("reelgate.db*"))
    assert KEY_BACKUP.encode() not in stored
    assert KEY_ROTATED.encode() not in stored
    assert KEY_MAIN.encode() not in stored


def test_admin_channel_errors_are_clear(gateway: LiveServer) -> None:
    with admin(gateway) as a, gateway.client() as c:
        assert c.get("/v1/admin/channels").status_code == 401  # a client token is not admin
        bad = a.post(
            "/v1/admin/channels", json={"name": "Bad Name", "provider": "ark", "api_key": "k"}
        )
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_parameter")
        assert bad.json()["param"] == "name"
        extra = a.post(
            "/v1/admin/channels",
            json={"name": "x", "provider": "ark", "api_key": "k", "colour": "red"},
        )
        assert extra.json()["code"] == "unsupported_parameter"
        no_key = a.post("/v1/admin/channels", json={"name": "x"})
        assert (no_key.status_code, no_key.json()["param"]) == (400, "secret")
        ok = a.post(
            "/v1/admin/channels",
            json={
                "name": "spare",
                "provider": "ark",
                "api_key": "k-1",
                "base_url": "http://127.0.0.1:9/api/v3",
            },
        )
        assert ok.status_code == 201
        dup = a.post(
            "/v1/admin/channels", json={"name": "spare", "provider": "ark", "api_key": "k-2"}
        )
        assert (dup.status_code, dup.json()["code"]) == (409, "channel_exists")
        settings_owned = a.patch("/v1/admin/channels/default", json={"weight": 3})
        assert (settings_owned.status_code, settings_owned.json()["code"]) == (
            409,
            "channel_from_settings",
        )
        missing = a.post("/v1/admin/channels/nope/enable")
        assert (missing.status_code, missing.json()["code"]) == (404, "channel_not_found")
        off = a.post("/v1/admin/channels/spare/disable", json={"reason": "maintenance"})
        assert off.json()["data"]["disabled_by"] == "admin"
        assert off.json()["data"]["disabled_reason"] == "maintenance"
        assert a.delete("/v1/admin/channels/spare").json()["data"]["deleted"] is True
        assert a.get("/v1/admin/channels/spare").status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        {"api_key": "ключ-ark"},  # not ASCII: cannot be an Authorization header
        {"api_key": "ark key"},
        {"api_key": "ark-key\n"},
        {"api_key": "ark-key", "base_url": "http://127.0.0.1:9/\x00"},
        {"api_key": "ark-key", "base_url": "http://P\U00098e91.example/"},  # no IDNA form
    ],
)
def test_a_key_or_url_the_http_client_cannot_send_is_refused_and_channels_keep_working(
    gateway: LiveServer, fields: dict[str, str]
) -> None:
    """Found by fuzzing: such a key was stored, then every rebuild of the channels raised, and
    each channel operation after it answered 500."""
    with admin(gateway) as a:
        bad = a.post("/v1/admin/channels", json={"name": "odd", "provider": "ark", **fields})
        param = "base_url" if "base_url" in fields else "secret"
        assert (bad.status_code, bad.json()["code"], bad.json()["param"]) == (
            400,
            "invalid_parameter",
            param,
        )
        assert "ключ" not in bad.text
        ok = a.post("/v1/admin/channels", json={"name": "odd", "provider": "ark", "api_key": "k-1"})
        assert ok.status_code == 201
        changed = a.patch("/v1/admin/channels/odd", json=fields)
        assert (changed.status_code, changed.json()["param"]) == (400, param)
        assert a.post("/v1/admin/channels/odd/enable").status_code == 200
        assert a.delete("/v1/admin/channels/odd").status_code == 200


def test_without_an_encryption_key_admin_channels_are_refused(
    sim: tuple[ArkSimulator, Any], tmp_path: Path
) -> None:
    _, handle = sim
    server = LiveServer(
        tmp_path,
        server_env(
            tmp_path,
            REELGATE_ARK_API_KEY=KEY_MAIN,
            REELGATE_ARK_BASE_URL=handle.base_url,
            REELGATE_ADMIN_TOKEN=ADMIN,
        ),
    )
    server.start()
    try:
        with admin(server) as a:
            refused = a.post(
                "/v1/admin/channels", json={"name": "x", "provider": "ark", "api_key": KEY_BACKUP}
            )
            assert refused.status_code == 409
            assert refused.json()["code"] == "encryption_key_missing"
            assert KEY_BACKUP not in refused.text
    finally:
        server.stop()
    assert KEY_BACKUP not in (tmp_path / "server.log").read_text()


def test_webhook_secrets_are_sealed_at_rest_and_still_sign(
    gateway: LiveServer, tmp_path: Path
) -> None:
    hook = Receiver().start()
    try:
        with gateway.client() as c:
            secret = c.put("/v1/webhook", json={"url": hook.url}).json()["data"]["secret"]
            task = c.post(
                "/v1/video/generations",
                json={"model": "sandbox-t2v", "prompt": "x", "duration": 1, "size": "160x120"},
            ).json()["task_id"]
            assert gateway.wait_terminal(task)["status"] == "success"
            deadline = time.monotonic() + 20
            while not hook.received and time.monotonic() < deadline:
                time.sleep(0.05)
            got = hook.received[0]
            payload = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
            assert payload["data"]["task_id"] == task
            rotated = c.post("/v1/webhook/rotate").json()["data"]["secret"]
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("reelgate.db*"))
        for value in (secret, rotated):
            assert value.encode() not in stored
            assert value.removeprefix("whsec_").encode() not in stored
    finally:
        hook.stop()


def test_a_channel_added_in_one_process_is_used_by_a_worker_in_another(
    sim: tuple[ArkSimulator, Any], tmp_path: Path
) -> None:
    simulator, handle = sim
    env = server_env(
        tmp_path,
        REELGATE_ADMIN_TOKEN=ADMIN,
        REELGATE_ENCRYPTION_KEY=ENCRYPTION,
        REELGATE_CHANNEL_REFRESH_SECONDS="0.5",
    )
    api = LiveServer(tmp_path, env)
    api.start("--no-worker")
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "reelgate", "worker"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        body = {"model": MODEL, "prompt": "cross-process"}
        with admin(api) as a, api.client() as c:
            before = c.post("/v1/video/generations", json=body)
            assert (before.status_code, before.json()["code"]) == (400, "model_not_configured")
            added = a.post(
                "/v1/admin/channels",
                json={
                    "name": "shared",
                    "provider": "ark",
                    "api_key": KEY_BACKUP,
                    "base_url": handle.base_url,
                },
            )
            assert added.status_code == 201
            made = c.post("/v1/video/generations", json=body)
            assert made.status_code == 200, made.text
        done = api.wait_terminal(made.json()["task_id"], timeout=60)
        assert done["status"] == "success"
        assert [
            t.key
            for t in simulator.tasks.values()
            if t.body["content"][0]["text"] == "cross-process"
        ] == [KEY_BACKUP]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        api.stop()
    assert KEY_BACKUP not in (tmp_path / "worker.log").read_text()


def test_channels_from_the_cli(tmp_path: Path) -> None:
    env = server_env(tmp_path, REELGATE_ENCRYPTION_KEY=ENCRYPTION)

    def cli(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelgate", "channel", *args],
            cwd=tmp_path,
            env={
                **env,
                "COLUMNS": "200",
                **({"REELGATE_CHANNEL_API_KEY": key} if key else {}),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )

    ark = ("--provider", "ark")
    bad = cli("add", "cli-one", *ark, "--weight", "2", "--base-url", "ftp://x", key=KEY_BACKUP)
    assert bad.returncode == 2
    assert "base_url" in bad.stderr
    # Regions and options are the provider's own: checked against its declaration.
    region = cli("add", "cli-one", *ark, "--region", "mars-1", key=KEY_BACKUP)
    assert (region.returncode, "no region 'mars-1'" in region.stderr) == (1, True), region.stderr
    option = cli("add", "cli-one", *ark, "--option", "colour=red", key=KEY_BACKUP)
    assert (option.returncode, "options.colour" in option.stderr) == (1, True), option.stderr
    unknown = cli("add", "cli-one", "--provider", "nope", key=KEY_BACKUP)
    assert "unknown provider 'nope'" in unknown.stderr
    secret = tmp_path / "ark.key"
    secret.write_text(KEY_BACKUP + "\n")
    made = cli(
        "add", "cli-one", *ark, "--weight", "2", "--models", "a, b", "--option", "timeout=12",
        "--secret-file", str(secret),
    )  # fmt: skip
    assert (made.returncode, made.stdout.strip()) == (0, "cli-one: active"), made.stderr
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("reelgate.db*"))
    assert KEY_BACKUP.encode() not in stored  # sealed at rest
    assert cli("set", "cli-one", "--rpm", "5").returncode == 0
    off = cli("disable", "cli-one", "--reason", "maintenance")
    assert off.stdout.strip() == "cli-one: disabled (admin: maintenance)"
    listed = cli("list").stdout
    assert "cli-one" in listed
    assert cli("enable", "cli-one").stdout.strip() == "cli-one: active"
    assert cli("remove", "cli-one").returncode == 0
    assert "cli-one" not in cli("list").stdout
