"""Hostile query parameters, path segments, headers, media links and admin bodies against a live
gateway (SQLite, and PostgreSQL where NUL and NaN used to reach the driver): a 4xx with a
stable code in the route's own error shape, never a 500, and no guarantee silently dropped."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import LiveServer, server_env
from tests.pg import _drop, _pg_database, pg_url

ADMIN = "admin-hostile-secret"
HUGE = "9" * 5000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("hostile-requests")
    server = LiveServer(workdir, server_env(workdir, REELGATE_ADMIN_TOKEN=ADMIN))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def done(gateway: LiveServer) -> dict[str, Any]:
    """A finished sandbox task (its id, its file's signed link)."""
    with gateway.client() as c:
        body = {"model": "sandbox-t2v", "prompt": "a boat", "duration": 1, "size": "160x120"}
        task_id = c.post("/v1/video/generations", json=body).json()["id"]
    return gateway.wait_terminal(task_id)


def code_of(answer: httpx.Response) -> str:
    body = answer.json()
    return str(body["error"]["code"] if "error" in body else body["code"])


def raw_request(server: LiveServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 exchange with bytes no client library lets through (non-ASCII headers)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(
            head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def tasks_stored(server: LiveServer) -> int:
    with sqlite3.connect(server.workdir / "reelgate.db") as db:
        return int(db.execute("SELECT count(*) FROM tasks").fetchone()[0])


@pytest.mark.parametrize(
    ("path", "code", "param"),
    [
        ("/v1/video/generations?after=%00", "invalid_parameter", "after"),
        ("/v1/video/generations?model=a%1bb", "invalid_parameter", "model"),
        ("/v1/video/generations?limit=" + HUGE, "invalid_parameter", "limit"),
        ("/v1/video/generations?limit=--5", "invalid_parameter", "limit"),
        ("/v1/video/generations?limit=%D9%A3", "invalid_parameter", "limit"),  # an Arabic 3
        ("/v1/video/generations/%00", "invalid_parameter", "task_id"),
        ("/v1/video/generations/" + "x" * 300, "invalid_parameter", "task_id"),
        ("/v1/video/generations/x?wait=nan", "invalid_parameter", "wait"),
        ("/v1/video/generations/x?wait=1e400", "invalid_parameter", "wait"),
        ("/v1/usage?from=" + "9" * 25, "invalid_parameter", "from"),
        ("/v1/usage?from=%00", "invalid_parameter", "from"),
        ("/v1/videos?limit=" + "9" * 40, "invalid_parameter", "limit"),
        ("/v1/videos?after=%00", "invalid_parameter", "after"),
        ("/v1/videos/%00", "invalid_parameter", "video_id"),
        ("/api/v3/contents/generations/tasks?page_num=--5", "invalid_parameter", "page_num"),
        ("/api/v3/contents/generations/tasks?page_size=" + "9" * 30, "invalid_parameter", None),
        ("/api/v3/contents/generations/tasks?filter.task_ids=%00", "invalid_parameter", None),
        ("/api/v3/contents/generations/tasks/%00", "invalid_parameter", "task_id"),
    ],
)
def test_hostile_query_parameters_and_path_segments_are_a_400(
    gateway: LiveServer, path: str, code: str, param: str | None
) -> None:
    with gateway.client() as c:
        answer = c.get(path)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    shaped = body["error"] if path.startswith(("/v1/videos", "/api/v3")) else body
    assert shaped["code"] == code
    if param is not None:
        assert shaped["param"] == param


def test_headers_with_thousands_of_digits_name_nothing(
    gateway: LiveServer, done: dict[str, Any]
) -> None:
    task_id = done["task_id"]
    with gateway.client() as c:
        for path in (f"/v1/video/generations/{task_id}", f"/v1/videos/{task_id}"):
            for etag in (HUGE, f'W/"{HUGE}.0"', 'W/"\u0663.0"'.encode()):
                assert c.get(path, headers={"If-None-Match": etag}).status_code == 200
        events = c.get(f"/v1/video/generations/{task_id}/events", headers={"Last-Event-ID": HUGE})
        assert events.status_code == 200
        assert "event: status" in events.text  # an id that names no version: the status again
        content = f"/v1/video/generations/{task_id}/content"
        assert c.get(content, headers={"Range": f"bytes={HUGE}-"}).status_code == 416
        tail = c.get(content, headers={"Range": f"bytes=-{HUGE}"})
        assert tail.status_code == 206
        assert tail.content == c.get(content).content  # the whole file
        head = c.get(content, headers={"Range": f"bytes=0-{HUGE}"})
        assert head.status_code == 206
        assert head.headers["content-range"].startswith("bytes 0-")
        assert c.get(content, headers={"Range": "bytes=\u0663-".encode()}).status_code == 200


def test_media_links_with_odd_expiries_or_signatures_are_unknown_files(
    gateway: LiveServer, done: dict[str, Any]
) -> None:
    link = urlsplit(done["result_url"])
    query = dict(p.split("=", 1) for p in link.query.split("&"))
    with httpx.Client(base_url=gateway.url) as c:
        assert c.get(f"{link.path}?{link.query}").status_code == 200
        for expires, sig in (
            (HUGE, query["sig"]),
            ("9" * 25, query["sig"]),
            ("--5", query["sig"]),
            (query["expires"], "%C3%A9" * 43),
            (query["expires"], "%00" + query["sig"][1:]),
            (query["expires"], query["sig"] + "A"),
        ):
            answer = c.get(f"{link.path}?expires={expires}&sig={sig}")
            assert answer.status_code in (400, 404), (expires, sig)
            assert code_of(answer) in ("file_not_found", "invalid_parameter")


def test_a_key_that_cannot_be_honoured_is_refused_not_ignored(gateway: LiveServer) -> None:
    """granian drops a non-ASCII header value; the key used to vanish and two creates made two
    tasks. Now each is a 400 and nothing is made."""
    body = json.dumps({"model": "sandbox-t2v", "prompt": "once", "duration": 1}).encode()
    auth = b"Authorization: Bearer " + gateway.token.encode()
    before = tasks_stored(gateway)
    for path, header in (
        (b"/v1/video/generations", b"Idempotency-Key: \xc3\xa9t\xc3\xa9"),
        (b"/v1/videos", b"Idempotency-Key: \xe9t\xe9"),
        (b"/v1/video/generations", b"Idempotency-Key: " + b"k" * 256),
    ):
        for _ in range(2):
            status, answer = raw_request(
                gateway,
                b"POST "
                + path
                + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + auth
                + b"\r\n"
                + header,
                body,
            )
            assert status == 400, answer
            assert b"Idempotency-Key" in answer
    ark = b"/api/v3/contents/generations/tasks"
    for header in (b"X-Client-Request-Id: \xc3\xa9", b"X-Client-Request-Id: " + b"r" * 300):
        status, answer = raw_request(
            gateway, b"POST " + ark + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n" + header, b"{}"
        )
        assert status == 400, answer
        assert json.loads(answer)["error"]["param"] == "X-Client-Request-Id"
    assert tasks_stored(gateway) == before
    # A non-ASCII bearer token is a 401, not a 500.
    status, _ = raw_request(
        gateway, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\xa9"
    )
    assert status == 401


def test_the_longest_client_request_id_is_honoured(gateway: LiveServer) -> None:
    """A 255-character X-Client-Request-Id does not fit the key column once namespaced: it is
    kept as its digest, and the same id still answers the same task."""
    with gateway.client() as c:
        answers = [
            c.post(
                "/api/v3/contents/generations/tasks",
                json={"model": "sandbox-t2v", "content": [{"type": "text", "text": "once"}]},
                headers={"X-Client-Request-Id": "r" * 255},
            )
            for _ in range(2)
        ]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert answers[0].json()["id"] == answers[1].json()["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/v1/admin/tokens", {"name": "bad\x00name"}, "name"),
        ("POST", "/v1/admin/tokens", {"name": "x", "rpm": 2**40}, "rpm"),
        ("POST", "/v1/admin/tokens", {"name": "x", "max_concurrent": 10**30}, "max_concurrent"),
        ("POST", "/v1/admin/tokens", {"name": "x", "models": ["a\udfffb"]}, "models[0]"),
        ("POST", "/v1/admin/tokens", {"name": "x", "webhook_url": "http://a:0/"}, "webhook_url"),
        ("POST", "/v1/admin/tokens/{ref}/quota", {"grant": 2**62}, "grant"),
        ("POST", "/v1/admin/tokens/{ref}/quota", {"set": float("nan")}, "set"),
        ("POST", "/v1/admin/tokens/{ref}/quota", {"grant": 1, "note": "a\x00"}, "note"),
        ("PATCH", "/v1/admin/tokens/{ref}", {"rpm": 2**31}, "rpm"),
        ("GET", "/v1/admin/ledger?after=" + "9" * 19, None, "after"),
        ("GET", "/v1/admin/ledger?token=%00", None, "token"),
        ("GET", "/v1/admin/usage?to=" + HUGE, None, "to"),
        ("POST", "/v1/admin/channels", {"name": "c1", "api_key": "k", "rpm": 2**40}, "rpm"),
        ("POST", "/v1/admin/channels", {"name": "c1", "api_key": "k", "models": ["\x00"]}, None),
        (
            "POST",
            "/v1/admin/channels",
            {"name": "c1", "api_key": "k", "base_url": "http://a:0"},
            None,
        ),
        ("GET", "/v1/admin/channels/%00", None, "name"),
        ("PUT", "/v1/webhook", {"url": "http://example.com:65536/"}, "url"),
        ("PUT", "/v1/webhook", {"url": "http://[::1/"}, "url"),
        ("PUT", "/v1/webhook", {"url": "http://" + "a" * 64 + ".example/"}, "url"),
    ],
)
def test_admin_and_webhook_settings_refuse_what_their_columns_cannot_hold(
    gateway: LiveServer, method: str, path: str, body: dict[str, Any] | None, param: str | None
) -> None:
    token = gateway.token if path.startswith("/v1/webhook") else ADMIN
    with gateway.client(token) as c:
        ref = c.get("/v1/admin/tokens", headers={"Authorization": f"Bearer {ADMIN}"})
        path = path.replace("{ref}", ref.json()["data"][0]["id"])
        content = None if body is None else json.dumps(body).encode()
        answer = c.request(
            method, path, content=content, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_parameter"
    if param is not None:
        assert answer.json()["param"] == param


@pytest.mark.postgres
def test_nul_and_nan_never_reach_postgresql(tmp_path: Path) -> None:
    name = asyncio.run(_pg_database())
    server = LiveServer(
        tmp_path,
        server_env(tmp_path, REELGATE_DATABASE_URL=pg_url(name), REELGATE_ADMIN_TOKEN=ADMIN),
    )
    try:
        server.start()
        with server.client() as c:
            create = "/v1/video/generations"
            hostile = [
                ("POST", create, b'{"model": "sandbox-t2v", "prompt": "a\\u0000b"}'),
                (
                    "POST",
                    create,
                    b'{"model": "sandbox-t2v", "prompt": "x", "metadata": {"fps": NaN}}',
                ),
                ("POST", create, b'{"model": "sandbox-t2v\\u0000", "prompt": "x"}'),
                ("POST", "/v1/videos", b'{"model": "sandbox-t2v", "prompt": "x\\u0000"}'),
                ("GET", create + "?after=%00", b""),
                ("GET", create + "/%00", b""),
                ("GET", "/v1/videos/x%00", b""),
                ("GET", "/v1/admin/channels/%00", b""),
            ]
            for method, path, body in hostile:
                headers = {"Content-Type": "application/json"}
                if "/admin/" in path:
                    headers["Authorization"] = f"Bearer {ADMIN}"
                answer = c.request(method, path, content=body, headers=headers)
                assert answer.status_code == 400, (path, body, answer.text)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            for token_body in ({"name": "n\x00"}, {"name": "n", "rpm": 2**31}):
                made = c.post("/v1/admin/tokens", json=token_body, headers=admin)
                assert made.status_code == 400, made.text
            # The longest X-Client-Request-Id, namespaced, would overflow the key's column.
            ark = "/api/v3/contents/generations/tasks"
            once = {"model": "sandbox-t2v", "content": [{"type": "text", "text": "once"}]}
            keyed = {"X-Client-Request-Id": "r" * 255}
            ids = [c.post(ark, json=once, headers=keyed).json().get("id") for _ in range(2)]
            assert ids[0] is not None
            assert ids[0] == ids[1]
            fine = c.post(create, json={"model": "sandbox-t2v", "prompt": "a\tb\nc", "duration": 1})
            assert fine.status_code == 200, fine.text
        assert server.wait_terminal(fine.json()["id"])["status"] == "success"
    finally:
        server.stop()
        asyncio.run(_drop(name))


@pytest.mark.parametrize(
    "value",
    [b"\xc3\xa9\xe2\x80\x8b", b"\xff\xfe", b"9" * 5000, b'W/"\xd9\xa3.0"', b"bytes=\xd9\xa3-"],
)
def test_odd_values_in_every_header_reelgate_reads_are_never_a_500(
    gateway: LiveServer, done: dict[str, Any], value: bytes
) -> None:
    task_id = done["task_id"].encode()
    names = (
        b"If-None-Match",
        b"Last-Event-ID",
        b"Range",
        b"Prefer",
        b"Idempotency-Key",
        b"X-Client-Request-Id",
        b"X-Request-Id",
        b"Content-Type",
    )
    auth = b"Authorization: Bearer " + gateway.token.encode()
    routes = (
        (b"GET", b"/v1/video/generations/" + task_id),
        (b"GET", b"/v1/video/generations/" + task_id + b"/content"),
        (b"GET", b"/v1/video/generations/" + task_id + b"/events"),
        (b"GET", b"/v1/videos/" + task_id),
        (b"POST", b"/v1/video/generations"),
        (b"POST", b"/api/v3/contents/generations/tasks"),
    )
    for method, path in routes:
        for name in names:
            status, answer = raw_request(
                gateway,
                method
                + b" "
                + path
                + b" HTTP/1.1\r\nHost: x\r\n"
                + auth
                + b"\r\n"
                + name
                + b": "
                + value,
                b'{"model": "sandbox-t2v", "prompt": "x"}' if method == b"POST" else b"",
            )
            assert status < 500, (method, path, name, answer[:200])
    # A bearer token that is not ASCII is a 401.
    status, _ = raw_request(
        gateway, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + value
    )
    assert status == 401
