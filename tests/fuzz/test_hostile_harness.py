"""The hostile corpus's own parts, without a gateway: the raw wire (an answer, a hang, a close),
how answers and log lines become failure classes, and what the sweep and the strategies send."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from bench.hostile_cases import Pool, cases, swept
from bench.hostile_report import Report, attribute, log_entries
from bench.hostile_routes import GENERIC_HEADERS, GENERIC_QUERY, Route
from bench.hostile_values import Raw, to_json
from bench.hostile_wire import Answer, Case, exchange
from hypothesis import HealthCheck, Phase, given, settings

LIMIT = 4096
CREATE = Route(
    "POST",
    "/v1/things/{thing_id}",
    query=("limit",),
    headers=("Range",),
    bodies=({"prompt": "a long prompt", "duration": 5, "image": "https://x.example.com/a.png"},),
    fields=("prompt", "duration", "image", "seed"),
)
POOL = Pool("rg_secret", "admin-secret", values={"thing_id": ["thing_1"]})


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    """A raw TCP server whose behaviour is the first word of the request's path."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            request = conn.recv(65536)
            path = request.split(b" ")[1].decode()
            seen.append(path)
            if path == "/hang":
                time.sleep(1.5)
            elif path == "/close":
                pass
            else:
                body = b'{"code": "internal_error"}'
                conn.sendall(b"HTTP/1.1 500 X\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], seen
    listener.close()


def case(path: bytes = b"/x", **kw: object) -> Case:
    return Case("GET /x", "path.x", "kind", b"GET", path, **kw)  # type: ignore[arg-type]


def test_the_wire_tells_an_answer_a_hang_and_a_close_apart(server: tuple[int, list[str]]) -> None:
    port, seen = server
    answered = exchange(port, case(), timeout=5)
    assert (answered.status, answered.json_code()) == (500, "internal_error")
    assert exchange(port, case(b"/hang"), timeout=0.5).error == "timeout"
    assert exchange(port, case(b"/close"), timeout=5).error == "closed"
    assert seen == ["/x", "/hang", "/close"]


def test_answers_become_failure_classes_and_notes() -> None:
    report = Report("sqlite", 1, {"rg_secret": "$TOKEN"})
    hostile = case(headers=[(b"authorization", b"Bearer rg_secret")])
    report.record(hostile, Answer(500, body=b'{"code": "internal_error"}'), [], LIMIT)
    report.record(hostile, Answer(500, body=b'{"code": "internal_error"}'), [], LIMIT)
    report.record(hostile, Answer(None, error="timeout"), [], LIMIT)
    report.record(hostile, Answer(None, error="closed"), [], LIMIT)  # owed an answer
    report.record(case(b"/\xff"), Answer(None, error="closed"), [], LIMIT)  # not HTTP: may close
    outage = Case("DELETE /v1/videos/{video_id}", "s", "k", b"DELETE", b"/v1/videos/v")
    outage_answer = Answer(503, body=b'{"error": {"code": "upstream_unavailable"}}')
    report.record(outage, outage_answer, [], LIMIT)
    report.record(hostile, Answer(400), ["unhandled error: ValueError: x [at a.py f]"], LIMIT)
    nan = Case("POST /x", "body.seconds", "non-finite", b"POST", b"/x", body=b'{"seconds":NaN}')
    report.record(nan, Answer(200), [], LIMIT)  # canonical input would refuse it: listed
    checks = sorted((c.check, c.count) for c in report.classes.values())
    assert checks == [("5xx", 2), ("hang", 1), ("log", 1), ("no answer (closed)", 1)]
    assert "$TOKEN" in next(iter(report.classes.values())).example
    assert "rg_secret" not in json.dumps(report.as_json())
    assert len(report.notes) == 3
    assert "accepted (2xx): POST /x body.seconds non-finite" in report.notes
    assert not report.ok()


def test_log_lines_find_their_request_by_id_or_by_time() -> None:
    now = time.time()
    quiet = (case(headers=[(b"x-request-id", b"hx-1")]), Answer(200, started=now, ended=now + 1))
    broken = (case(headers=[(b"x-request-id", b"hx-2")]), Answer(500, started=now, ended=now + 1))
    unhandled = {  # logged outside the request's context: no request id
        "event": "unhandled error",
        "level": "error",
        "timestamp": datetime.fromtimestamp(now + 0.5, UTC).isoformat().replace("+00:00", "Z"),
        "exception": 'Traceback\n  File "/src/reelgate/api/seed.py", line 9, in list_limit\n'
        "ValueError: Exceeds the limit (4300 digits)",
    }
    worker = {"event": "task failed", "level": "error", "request_id": "hx-1", "exception": "E"}
    loose = (
        b"Traceback (most recent call last):\n"
        b'  File "/r/reelgate/providers/ark.py", line 3, in _exchange\n'
        b"UnicodeEncodeError: surrogates not allowed\n"
    )
    data = "\n".join(json.dumps(e) for e in (unhandled, worker)).encode() + b"\n" + loose
    lines, nobody = attribute([quiet, broken], log_entries(data))
    assert lines[1] == [
        "unhandled error: ValueError: Exceeds the limit (4300 digits) [at api/seed.py list_limit]"
    ]
    assert lines[0] == ["task failed: E"]
    assert nobody == [
        "traceback outside the log: UnicodeEncodeError: surrogates not allowed"
        " [at providers/ark.py _exchange]"
    ]


def test_the_sweep_meets_every_family_in_every_field() -> None:
    sent = swept(CREATE, POOL, LIMIT)
    kinds = {(c.slot, c.kind) for c in sent}

    def met(slot: str) -> set[str]:
        return {k for s, k in kinds if s == slot}

    assert {"surrogate", "control", "invalid-utf8", "long-text"} <= met("body.prompt")
    assert {"huge-int", "non-finite", "numeric-string"} <= met("body.duration")
    assert {"url-port", "url-ipv6", "url-label"} <= met("body.image")
    assert ("body.seed", "surrogate") in kinds  # a schema field the example leaves out
    assert met("header.range") >= {"huge-int", "non-ascii"}
    assert met("path.thing_id") >= {"surrogate", "control"}
    bodies = {c.kind: c.body for c in sent if c.slot == "body.prompt"}
    assert b'"a\\udfffb"' in (bodies["surrogate"] or b"")  # an escape, as a JSON client sends
    assert b"\xed\xbf\xbf" in (bodies["invalid-utf8"] or b"")  # raw bytes that are not UTF-8
    assert all(c.header(b"authorization") == b"Bearer rg_secret" for c in sent)


def test_every_route_is_asked_the_generic_headers_and_query_values() -> None:
    slots = set(Route("GET", "/healthz", auth="").slots())
    assert {f"header.{h.lower()}" for h in GENERIC_HEADERS} <= slots
    assert {f"query.{q}" for q in GENERIC_QUERY} <= slots
    assert to_json({"a": [Raw(b"1e999"), "\udfff"]}) == b'{"a":[1e999,"\\udfff"]}'


def test_the_random_part_changes_one_slot_of_a_valid_request() -> None:
    drawn: list[Case] = []

    @settings(
        max_examples=150,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(CREATE, POOL, LIMIT))
    def collect(made: Case) -> None:
        drawn.append(made)

    collect()
    assert len({c.slot for c in drawn}) > 10
    assert len({c.kind for c in drawn}) > 10
    for made in drawn:
        if not made.slot.startswith(("path.", "method")):
            assert made.target.startswith(b"/v1/things/thing_1")
        if made.slot.startswith("query.") or made.slot.startswith("header.x"):
            assert made.body is not None
            assert json.loads(made.body)["prompt"] == "a long prompt"  # the rest stays valid
