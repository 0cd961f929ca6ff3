"""The hostile corpus (issue #16): what attackers send and schemathesis never does, against every
route of a live gateway on SQLite and on PostgreSQL.

    python -m bench.hostile --db sqlite --db postgres --cases 20000 --seed 1   # `make fuzz`

Hypothesis strategies (``bench/hostile_values.py``) draw lone surrogates (JSON escapes and raw
invalid UTF-8), NUL and control characters, numbers of thousands of digits, signed and non-finite
numbers, deep and wide JSON within and beyond the body limit, wrong JSON types for every field,
odd URLs, non-ASCII and overlong header values, and hostile path segments, query values and
methods. Each request is valid but for one slot (``bench/hostile_cases.py``) and goes out as raw
bytes (``bench/hostile_wire.py``) to every route (``bench/hostile_routes.py``): those of
``/openapi.json``, the console, media links, callbacks, the docs and paths that do not exist.
The gateway is ``bench/fuzz.py``'s: the sandbox, the Ark simulator, prices, the admin API, in a
network namespace with only loopback (fuzzed URLs are really fetched); PostgreSQL is reached
through a Unix socket forwarded into it.

Checks, per batch of requests: no answer >= 500 (but the documented upstream 503s bench/fuzz.py
allows), no hang (a deadline per request), no unhandled error or traceback in the server log, the
gateway process alive, and the worker alive (a normal sandbox task made after the batch reaches
``success``). Failures are reported by class (route, slot, status and code, log line) with the
families of values that hit it and one reproducer; exit status 1 when there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from bench.fuzz import ADMIN, ARK_KEY, client_token, isolated, run_isolated
from bench.hostile_cases import Pool, cases, swept
from bench.hostile_report import Report, attribute, log_entries
from bench.hostile_routes import UNDOCUMENTED, Route, documented, localized, with_options
from bench.hostile_wire import Answer, Case, exchange
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from PIL import Image
from tests.conftest import LiveServer, ark_gateway
from tests.receiver import Receiver
from tests.unit.test_pricing import TABLE

SANDBOX = {"model": "sandbox-t2v", "prompt": "a calm sea", "duration": 1, "size": "160x120"}
ARK = {"model": "doubao-seedance-1-0-pro-250528", "prompt": "a calm sea", "duration": 5}
FAST = {"queue_seconds": 0, "run_seconds": 0}


def _png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


IMAGE = _png(640, 360)  # in place of the examples' images.example.com (no network here)


# -- the gateway and what is on it ---------------------------------------------------------------
@contextmanager
def gateway(workdir: Path, database_url: str, body_limit: int) -> Iterator[tuple[LiveServer, Any]]:
    env = {
        "REELGATE_ADMIN_TOKEN": ADMIN,
        "REELGATE_ENCRYPTION_KEY": "a long passphrase for the hostile corpus",
        "REELGATE_PRICES": json.dumps(TABLE),
        "REELGATE_BILLING_CURRENCY": "µCNY",
        "REELGATE_MAX_BODY_BYTES": str(body_limit),
        "REELGATE_CALLBACKS": "true",  # Ark tasks get callback addresses to aim at
    }
    if database_url:
        env["REELGATE_DATABASE_URL"] = database_url
    with ark_gateway(workdir, ARK_KEY, queued=0.2, running=0.3, **env) as (server, sim):
        yield server, sim


def _finish(c: httpx.Client, task_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = c.get(f"/v1/video/generations/{task_id}?wait=5").json()["data"]
        if data["status"] in ("success", "failure") or time.monotonic() > deadline:
            return data


def make_pool(server: LiveServer, sim: Any, hooks: Receiver) -> Pool:
    """Tasks, links, deliveries, a victim token and channel: the valid values of the corpus."""
    pool = Pool(client_token(server), ADMIN)
    victim = client_token(server, "victim")  # the admin routes revoke and rotate this one
    with server.client(pool.token) as c, server.client(ADMIN) as admin:
        c.put("/v1/webhook", json={"url": hooks.url}).raise_for_status()
        made = [c.post("/v1/video/generations", json=b) for b in [SANDBOX] * 4 + [ARK] * 2]
        ids = [r.raise_for_status().json()["task_id"] for r in made]
        tasks = [_finish(c, i, 60) for i in ids]
        links = [urlsplit(t[k]) for t in tasks for k in ("result_url", "last_frame_url") if t[k]]
        media = [
            {"root": u.path.split("/")[3], "name": u.path.split("/")[4], **dict(parse_qsl(u.query))}
            for u in links
            if u.path.startswith("/v1/media/")
        ]
        deliveries = [
            d["id"]
            for i in ids
            for d in c.get(f"/v1/video/generations/{i}/deliveries").json()["data"]
        ]
        tokens = admin.get("/v1/admin/tokens").json()["data"]
        admin.post(
            "/v1/admin/channels",
            json={"name": "victim", "api_key": "k", "base_url": sim_url(server)},
        )
    callbacks = [
        dict(
            zip(
                ("provider", "task_id", "token"),
                urlsplit(t.body["callback_url"]).path.split("/")[3:6],
                strict=True,
            )
        )
        for t in list(sim.tasks.values())
        if isinstance(t.body.get("callback_url"), str)
    ]
    victim_id = next(t["id"] for t in tokens if t["name"] == "victim")
    # Deletes and cancels get tasks of their own: the others stay for everything else.
    pool.values = {
        "task_id": ids[:3] + ids[5:],
        "video_id": ids[:3] + ids[5:],
        "delivery_id": deliveries or ["whd_x"],
        "ref": [victim_id, victim[:12]],
        "name": ["victim"],
        "file": ["console.css", "swagger-ui.css"],
        "unknown": ["nope"],
    }
    pool.doomed = ids[3:5]
    pool.bundles = {
        "/v1/media/{root}/{name}": media,
        "/v1/callbacks/{provider}/{task_id}/{token}": callbacks,
    }
    return pool


def sim_url(server: LiveServer) -> str:
    return server.env["REELGATE_ARK_BASE_URL"]


def worker_alive(server: LiveServer, token: str, timeout: float) -> str:
    """'' when a normal sandbox task made now reaches success within ``timeout``, else why not."""
    try:
        with server.client(token) as c:
            made = c.post("/v1/video/generations", json={**SANDBOX, "metadata": FAST})
            if made.status_code != 200:
                return f"the create answered {made.status_code}: {made.text[:200]}"
            data = _finish(c, made.json()["task_id"], timeout)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"the gateway did not answer: {type(exc).__name__}: {exc}"
    if data["status"] == "success":
        return ""
    return f"a normal task is {data['status']} after {timeout:g} s ({data.get('error')})"


# -- the run --------------------------------------------------------------------------------------
class Runner:
    """Sends cases in batches and checks the gateway after each."""

    def __init__(self, server: LiveServer, pool: Pool, report: Report, args: argparse.Namespace):
        self.server = server
        self.pool = pool
        self.report = report
        self.args = args
        self.sent = 0
        self.pending: list[tuple[Case, Future[Answer]]] = []
        self.executor = ThreadPoolExecutor(args.concurrency)
        self.log = server.workdir / "server.log"
        self.log_offset = self.log.stat().st_size
        self.dead_worker = 0  # consecutive batches after which the worker check failed
        self.broken: Exception | None = None

    def submit(self, case: Case) -> None:
        self.sent += 1
        if case.header(b"x-request-id") is None:
            case.headers.append((b"x-request-id", f"hx-{self.sent}".encode()))
        future = self.executor.submit(exchange, self.server.port, case, self.args.timeout)
        self.pending.append((case, future))
        if len(self.pending) >= self.args.batch:
            self.settle()

    def settle(self) -> None:
        """Wait for the batch, then read the log, and check the gateway and its worker."""
        if not self.pending:
            return
        done = [(case, future.result()) for case, future in self.pending]
        self.pending = []
        time.sleep(0.2)  # let the last answers' log lines reach the file
        with self.log.open("rb") as f:
            f.seek(self.log_offset)
            fresh = f.read()
        self.log_offset += len(fresh)
        lines, nobody = attribute(done, log_entries(fresh))
        for (case, answer), found in zip(done, lines, strict=True):
            self.report.record(case, answer, found, self.args.body_limit)
            if self.args.verbose:
                status = f"{answer.status} {answer.json_code()}" if answer.status else answer.error
                print(f"{case.route}  {case.slot}  {case.kind}  → {status}", flush=True)
        self.report.background(nobody, [c.route for c, _ in done])
        if self.server.proc is None or self.server.proc.poll() is not None:
            self.report.batch_failure("gateway exited", [c for c, _ in done])
            self.server.start()
            return
        if self.dead_worker >= 2:
            return  # twice dead, a restart included: later checks would only wait
        why = worker_alive(self.server, self.pool.token, self.args.alive_timeout)
        if not why:
            self.dead_worker = 0
            return
        self.report.batch_failure(f"worker: {why}", [c for c, _ in done])
        self.dead_worker += 1
        self.server.stop()  # a restart starts a new worker: does it survive what is queued?
        self.server.start()

    def run(self, routes: list[Route]) -> None:
        """Per route: the sweep (one value of each family in each slot), then the random part,
        its share of ``--cases`` by the route's weight."""
        weights = {r.label: len(r.slots()) for r in routes}
        total = sum(weights.values())
        for route in routes:
            if self.args.route and self.args.route not in route.label:
                continue
            if self.args.sweep:
                for case in swept(route, self.pool, self.args.body_limit):
                    self.submit(case)
                    self.report.swept += 1
            share = max(2, round(self.args.cases * weights[route.label] / total))
            self.drive(route, share)
        self.settle()
        self.executor.shutdown()

    def drive(self, route: Route, examples: int) -> None:
        @settings(
            max_examples=examples,
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(cases(route, self.pool, self.args.body_limit))
        def each(case: Case) -> None:
            # Nothing raised in here may reach Hypothesis: it would replay requests to shrink
            # what is the harness's own trouble (a gateway that cannot restart, say).
            if self.broken is None:
                try:
                    self.submit(case)
                except Exception as exc:  # re-raised below, once
                    self.broken = exc

        hypothesis_seed(self.args.seed ^ zlib.crc32(route.label.encode()))(each)()
        if self.broken is not None:
            raise self.broken


def corpus(db: str, args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix="reelgate-hostile-") as tmp, database(db) as url:
        hooks = Receiver().start()
        try:
            with gateway(Path(tmp), url, args.body_limit) as (server, sim):
                pool = make_pool(server, sim, hooks)
                document = httpx.get(f"{server.url}/openapi.json").json()
                with server.client(pool.token) as c:
                    models = c.get("/v1/models").raise_for_status().json()["data"]
                routes = [
                    with_options(localized(r, IMAGE, hooks.url), models)
                    for r in documented(document) + UNDOCUMENTED
                ]
                report = Report(db, len(routes), {pool.token: "$TOKEN", ADMIN: "$ADMIN_TOKEN"})
                started = time.monotonic()
                Runner(server, pool, report, args).run(routes)
                report.seconds = time.monotonic() - started
        finally:
            hooks.stop()
    return report


@contextmanager
def database(db: str) -> Iterator[str]:
    """'' (the gateway's own SQLite file) or the URL of a fresh PostgreSQL database."""
    if db == "sqlite":
        yield ""
        return
    from tests.pg import _drop, _pg_database, pg_url

    name = asyncio.run(_pg_database())
    try:
        yield pg_url(name)
    finally:
        asyncio.run(_drop(name))


# -- PostgreSQL from inside the namespace ----------------------------------------------------------
@contextmanager
def postgres_socket(admin_url: str) -> Iterator[str]:
    """``admin_url`` (TCP) served on a Unix socket too, which a network namespace still reaches;
    yields the admin URL that goes through it."""
    parts = urlsplit(admin_url)
    if "host=" in parts.query:  # already a socket
        yield admin_url
        return
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    with tempfile.TemporaryDirectory(prefix="reelgate-pg-") as tmp:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(f"{tmp}/.s.PGSQL.5432")
        listener.listen(128)
        threading.Thread(target=_accept, args=(listener, upstream), daemon=True).start()
        try:
            user = parts.username or "postgres"
            yield f"{parts.scheme}://{user}@{parts.path or '/test'}?host={tmp}"
        finally:
            listener.close()


def _accept(listener: socket.socket, upstream: tuple[str, int]) -> None:
    while True:
        try:
            inner, _ = listener.accept()
            outer = socket.create_connection(upstream, timeout=10)
        except OSError:
            return
        outer.settimeout(None)
        for a, b in ((inner, outer), (outer, inner)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"], help="repeatable")
    parser.add_argument("--cases", type=int, default=20_000, help="random requests per database")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="random part only")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same requests")
    parser.add_argument("--batch", type=int, default=100, help="requests between checks")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a request may take")
    parser.add_argument("--alive-timeout", type=float, default=30.0, help="for the worker check")
    parser.add_argument("--body-limit", type=int, default=1 << 20, help="the gateway's, in bytes")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument("--route", default="", help="only routes whose label contains this")
    parser.add_argument("--json", type=Path, help="also write the failures here")
    parser.add_argument("--verbose", action="store_true", help="one line per request")
    args = parser.parse_args()
    args.db = args.db or ["sqlite"]
    if not isolated():
        from tests.pg import PG_ADMIN

        with postgres_socket(PG_ADMIN) as inside:
            os.environ["REELGATE_TEST_PG"] = inside
            sys.exit(run_isolated(sys.argv[1:], module="bench.hostile"))
    reports = []
    for db in args.db:
        try:
            reports.append(corpus(db, args))
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # no PostgreSQL to use
            sys.exit(f"hostile: [{db}] not run: {exc}")
    for report in reports:
        report.print(args)
    if args.json:
        args.json.write_text(json.dumps([r.as_json() for r in reports], indent=1))
    sys.exit(0 if all(r.ok() for r in reports) else 1)


if __name__ == "__main__":
    main()
