"""The pieces the status GET's hot path is made of: lock-free HTTP metrics in Prometheus' own
format, renders kept per task value, and the media links' epoch kept per clock bucket."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reelgate.api.bodies import RenderCache
from reelgate.api.media import LINK_BUCKET_SECONDS, MediaLinks
from reelgate.core.signing import expiry_for
from reelgate.metrics import HttpStats
from reelgate.testing import ManualClock
from tests.unit.test_lifecycle import make_task


def test_http_stats_export_requests_and_a_cumulative_histogram() -> None:
    stats = HttpStats(buckets=(0.01, 0.1, 1))
    registry = CollectorRegistry()
    registry.register(stats)
    route = stats.route("/v1/videos/{video_id}", "GET")
    assert stats.route("/v1/videos/{video_id}", "GET") is route  # one per route and method
    for seconds in (0.005, 0.01, 0.05, 0.5, 5):
        route.timed(seconds)
    for status in (200, 200, 200, 304, 404):
        route.answered(status)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    labels = (("method", "GET"), ("route", "/v1/videos/{video_id}"))
    for status, count in (("200", 3), ("304", 1), ("404", 1)):
        key = ("reelgate_http_requests_total", tuple(sorted((*labels, ("status", status)))))
        assert samples[key] == count
    buckets = {"0.01": 2, "0.1": 3, "1.0": 4, "+Inf": 5}  # 0.01 itself is "le 0.01"
    for le, count in buckets.items():
        key = (
            "reelgate_http_request_duration_seconds_bucket",
            tuple(sorted((*labels, ("le", le)))),
        )
        assert samples[key] == count
    assert samples[("reelgate_http_request_duration_seconds_count", labels)] == 5
    assert samples[("reelgate_http_request_duration_seconds_sum", labels)] == pytest.approx(5.565)


def test_a_render_is_kept_for_the_same_task_value_and_inputs_only() -> None:
    cache = RenderCache[bytes](size=2)
    task = make_task()
    assert cache.get(task, 1) is None
    assert cache.put(task, 1, b"one") == b"one"
    assert cache.get(task, 1) == b"one"
    assert cache.get(task, 2) is None  # other inputs (an estimate moved on)
    assert cache.get(dataclasses.replace(task), 1) is None  # an equal but other value
    others = [make_task(), make_task()]
    for other in others:
        cache.put(other, 1, b"x")
    assert cache.get(task, 1) is None  # the oldest went first
    assert cache.get(others[1], 1) == b"x"


def test_the_link_epoch_is_the_expiry_for_now_whatever_the_clock_does(tmp_path: Path) -> None:
    clock = ManualClock(1_000_000.0)
    links = MediaLinks(b"k" * 32, "http://x", {"m": tmp_path}, ttl=86_400, clock=clock)
    readings = [0.0, 1.0, 3599.0, 3600.0, 3601.0, 7300.0, 10.0, -5000.0, 50_000.0, 49_999.5]
    for offset in readings:
        clock.set(1_000_000.0 + offset)
        assert links.epoch() == expiry_for(clock(), 86_400, LINK_BUCKET_SECONDS), offset
