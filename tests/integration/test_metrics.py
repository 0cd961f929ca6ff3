"""Prometheus metrics move through a task's life: requests, transitions, upstream calls,
staleness, webhook deliveries, media copies, queues and channel state — with bounded labels."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ark_gateway, free_port, server_env
from tests.receiver import Receiver

MODEL = "doubao-seedance-1-0-pro-250528"


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_a_task_from_create_to_webhook(tmp_path: Path) -> None:
    hook = Receiver().start()
    try:
        with ark_gateway(tmp_path, "sim-key", REELGATE_METRICS_REFRESH_SECONDS="0.2") as (
            server,
            _sim,
        ):
            with server.client() as c:
                assert c.put("/v1/webhook", json={"url": hook.url}).status_code == 200
                task_id = c.post(
                    "/v1/video/generations", json={"model": MODEL, "prompt": "a cat"}
                ).json()["task_id"]
                assert server.wait_terminal(task_id)["status"] == "success"
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    found = samples(server.url)
                    if (
                        value(found, "reelgate_webhook_deliveries_total", outcome="delivered")
                        and value(found, "reelgate_media_mirror_bytes_total")
                        and not value(
                            found,
                            "reelgate_tasks_unfinished",
                            provider="ark",
                            model=MODEL,
                            status="queued",
                        )
                    ):
                        break
                    time.sleep(0.1)
            text = httpx.get(f"{server.url}/metrics").text
    finally:
        hook.stop()

    route = "/v1/video/generations"
    assert (
        value(found, "reelgate_http_requests_total", route=route, method="POST", status="200") == 1
    )
    assert (
        value(found, "reelgate_http_request_duration_seconds_count", route=route, method="POST")
        == 1
    )
    polled = "/v1/video/generations/{task_id}"
    assert (
        value(found, "reelgate_http_requests_total", route=polled, method="GET", status="200") >= 1
    )
    # Seen straight away as done, or running first: never a status twice.
    transitions = {
        status: value(
            found, "reelgate_task_transitions_total", provider="ark", model=MODEL, status=status
        )
        for status in ("in_progress", "success")
    }
    assert transitions["success"] == 1
    assert transitions["in_progress"] <= 1
    assert (
        value(
            found,
            "reelgate_upstream_requests_total",
            provider="ark",
            endpoint="create",
            outcome="ok",
        )
        == 1
    )
    assert (
        value(
            found,
            "reelgate_upstream_request_duration_seconds_count",
            provider="ark",
            endpoint="create",
        )
        == 1
    )
    assert value(found, "reelgate_task_staleness_seconds_count", provider="ark") == 1
    assert value(found, "reelgate_webhook_deliveries_total", outcome="delivered") == 1
    assert value(found, "reelgate_media_mirror_bytes_total") > 1000
    assert value(found, "reelgate_channel_state", channel="default", state="active") == 1
    assert value(found, "reelgate_channel_state", channel="default", state="disabled") == 0
    assert ("reelgate_admission_queue_depth", (("provider", "ark"),)) not in found or value(
        found, "reelgate_admission_queue_depth", provider="ark"
    ) == 0
    # Bounded labels: no task id, no upstream id, no token anywhere in the exposition.
    assert task_id not in text
    assert "cgt-" not in text
    assert server.token not in text


def test_a_worker_process_serves_its_metrics_on_its_own_port(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, REELGATE_METRICS_PORT=str(port))
    worker = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and "reelgate_channel_state" not in text:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.1)
        assert "reelgate_webhook_deliveries" in text
        assert "# TYPE reelgate_admission_queue_depth gauge" in text
    finally:
        worker.terminate()
        worker.wait(timeout=30)
