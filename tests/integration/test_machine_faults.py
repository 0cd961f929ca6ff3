"""Faults of the machine (issue #16, item 7): a store that fails makes the loops back off instead
of spinning; a render that cannot write its files ends ``render_failed`` or succeeds on a later
try, never spins; PostgreSQL that accepts and never answers costs a request the configured
seconds and a 503 that says so; ``/readyz`` notices a SQLite file deleted, replaced, on a full
disk or not writable."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.api.health import Readiness
from reelgate.core.lifecycle import Status, Task
from reelgate.engine import supervisor
from reelgate.engine.webhooks import WebhookSender
from reelgate.providers.sandbox.provider import MAX_RENDER_ATTEMPTS, job_id_of
from reelgate.store.sql import SqlStore, StoreError, open_store
from reelgate.testing import ManualClock
from tests.conftest import LiveServer, server_env
from tests.integration.test_engine import T0, Rig, owner, sandbox_rig, t2v
from tests.integration.test_engine_faults import FlakyStore, engine, make
from tests.pg import _drop, _pg_database, pg_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- a failing store -------------------------------------------------------------------------------


class Waits:
    """Stands in for the loops' wall-clock waits: records them and returns at once; sets
    ``stop`` once ``limit`` waits were asked for."""

    def __init__(self, stop: asyncio.Event, limit: int) -> None:
        self.stop = stop
        self.limit = limit
        self.seconds: list[float] = []

    async def __call__(self, seconds: float, _stop: asyncio.Event | None) -> None:
        self.seconds.append(seconds)
        if len(self.seconds) >= self.limit:
            self.stop.set()
        await asyncio.sleep(0)


async def test_a_failing_store_makes_the_worker_back_off_not_spin(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    flaky = FlakyStore(store)
    down = StoreError("database unavailable: connection refused")
    for method in ("claim_due", "claim_overdue", "count_unsubmitted", "next_due"):
        flaky.broken[method] = down
    stop = asyncio.Event()
    waits = Waits(stop, limit=24)
    _, worker, _ = engine(flaky, clock, pause_for=waits)
    with caplog.at_level(logging.ERROR, logger="reelgate.engine"):
        await asyncio.wait_for(worker.run(stop), 10)
    # Two loops (tracking, admission), each waiting longer after each failed round: 0.5 s,
    # 1 s, 2 s… up to ROUND_RETRY.cap, each within its ±20 % jitter.
    firsts = sorted(waits.seconds)[:2]
    assert all(0.4 <= s <= 0.6 for s in firsts)
    assert max(waits.seconds) <= supervisor.ROUND_RETRY.cap * 1.2
    assert max(waits.seconds) >= supervisor.ROUND_RETRY.cap * 0.8  # reached the cap
    # One line per failed round, no more: the cap bounds them to two a minute per loop.
    failed = [r for r in caplog.records if "round failed" in r.getMessage()]
    assert len(failed) == len(waits.seconds)
    assert all("connection refused" in r.getMessage() for r in failed)


async def test_the_loops_work_again_once_the_store_is_back(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    flaky = FlakyStore(store)
    service, worker, _ = engine(flaky, clock, poll_interval=0.01)
    me = await owner(service)
    task = await service.create(me, make("fine"))
    flaky.broken["claim_admission"] = StoreError("database unavailable: the disk is gone")
    stop = asyncio.Event()
    waits: list[float] = []

    async def short(seconds: float, _stop: asyncio.Event | None) -> None:
        waits.append(seconds)
        await asyncio.sleep(0.01)
        if len(waits) >= 3:
            flaky.broken.clear()  # the database is back

    running = asyncio.create_task(type(worker)(service, clock=clock, pause_for=short).run(stop))
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            clock.advance(5)
            if (await service.get(me, task.id)).status is Status.SUCCESS:
                break
        assert (await service.get(me, task.id)).status is Status.SUCCESS
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert len(waits) == 3
    assert any("work again after 3 failed" in r.getMessage() for r in caplog.records)


async def test_the_webhook_sender_backs_off_a_failing_store(store: SqlStore) -> None:
    flaky = FlakyStore(store)
    flaky.broken["claim_deliveries"] = StoreError("database unavailable: refused")
    service, _, _ = engine(flaky, ManualClock(T0))
    stop = asyncio.Event()
    waits = Waits(stop, limit=8)
    hooks = WebhookSender(service, lambda task: {}, worker_id="w", pause_for=waits)
    await asyncio.wait_for(hooks.run(stop), 10)
    assert waits.seconds[:5] == sorted(waits.seconds[:5])  # longer each time…
    assert max(waits.seconds) <= supervisor.ROUND_RETRY.cap * 1.2  # …up to the cap
    assert waits.seconds[-1] > 10 * waits.seconds[0]
    assert flaky.calls["claim_deliveries"] == 8


# -- the sandbox's renders on a disk that cannot take them -----------------------------------------


async def blocked_render(store: SqlStore, tmp_path: Path) -> tuple[Rig, Task, Path]:
    """A sandbox task whose render cannot write its last frame: a directory is where the file
    goes, so the render's final move fails with an OSError (as a full disk would make it)."""
    rig = sandbox_rig(store, tmp_path, queue=0, run=0)
    task = await rig.service.create(await owner(rig.service), t2v())
    blocker = tmp_path / "sandbox" / "media" / f"{job_id_of(task.id)}.png"
    blocker.mkdir(parents=True)
    return rig, task, blocker


async def run_renders(rig: Rig, task: Task, *, rounds: int = 200) -> int:
    """Tick (one clock second each) until the task ends; how many renders were started."""
    assert rig.sandbox is not None
    renders = 0
    for _ in range(rounds):
        await rig.worker.tick()
        pending = list(rig.sandbox._renders.values())
        renders += len(pending)
        await asyncio.gather(*pending)
        found = await rig.service.store.find_task(task.id)
        if found is not None and found.status.terminal:
            break
        rig.clock.advance(1)
    return renders


async def test_a_render_that_cannot_write_its_files_ends_render_failed_and_never_spins(
    store: SqlStore, tmp_path: Path
) -> None:
    rig, task, blocker = await blocked_render(store, tmp_path)
    renders = await run_renders(rig, task)
    ended = await store.find_task(task.id)
    assert ended is not None
    assert (ended.status, ended.error_code) == (Status.FAILURE, "render_failed")
    assert "cannot write the video" in ended.error_message
    assert renders == MAX_RENDER_ATTEMPTS  # a few tries, spaced out; not one per look
    assert not list(blocker.parent.glob("*.mp4"))  # nothing half-written is offered


async def test_a_render_that_could_not_write_succeeds_once_it_can(
    store: SqlStore, tmp_path: Path
) -> None:
    rig, task, blocker = await blocked_render(store, tmp_path)
    assert await run_renders(rig, task, rounds=1) == 1  # the first try fails
    blocker.rmdir()  # room again
    assert await run_renders(rig, task) == 1  # the next one, after its back-off, succeeds
    ended = await store.find_task(task.id)
    assert ended is not None
    assert ended.status is Status.SUCCESS


# -- PostgreSQL that accepts and never answers -----------------------------------------------------


class Proxy:
    """A TCP proxy on loopback to ``upstream`` (or, with none, a server that accepts and never
    answers). While ``frozen`` it forwards nothing and answers no new connection."""

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Proxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._keep(client) or self.upstream is None or self.frozen.is_set():
                continue  # held open, never answered
            server = socket.create_connection(self.upstream)
            if not self._keep(server):
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _keep(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed.is_set():
                sock.close()
                return False
            self._sockets.append(sock)
            return True

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set() and not self._closed.is_set():
                    time.sleep(0.01)
                sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            self._listener.close()
            for s in self._sockets:
                s.close()


@pytest.fixture
def silent() -> Iterator[Proxy]:
    proxy = Proxy().start()
    yield proxy
    proxy.close()


async def test_a_database_that_never_answers_fails_within_the_connect_timeout(
    silent: Proxy,
) -> None:
    store = await open_store(f"postgresql://nobody@127.0.0.1:{silent.port}/x", connect_timeout=0.5)
    try:
        with pytest.raises(StoreError) as raised:
            # The bound here only guards against a hang; the driver gives up after 0.5 s.
            await asyncio.wait_for(store.ping(), 20)
    finally:
        await store.close()
    assert raised.value.code == "store_unavailable"
    assert raised.value.message == (
        f"database unavailable: no connection could be made from 127.0.0.1:{silent.port} "
        "within 0.5 s"
    )


@pytest.mark.postgres
def test_a_gateway_whose_database_stops_answering_says_so_in_a_503(tmp_path: Path) -> None:
    name = asyncio.run(_pg_database())
    target = httpx.URL(pg_url(name))
    proxy = Proxy((target.host, target.port or 5432)).start()
    url = f"postgresql://{target.username or 'postgres'}@127.0.0.1:{proxy.port}/{name}"
    server = LiveServer(
        tmp_path,
        server_env(
            tmp_path,
            REELGATE_DATABASE_URL=url,
            REELGATE_DATABASE_CONNECT_TIMEOUT="1",
            REELGATE_DATABASE_STATEMENT_TIMEOUT="1",
            REELGATE_TOKEN_CACHE_TTL="0",
        ),
    )
    try:
        server.start()
        body = {"model": "sandbox-t2v", "prompt": "a cat", "duration": 1, "size": "160x120"}
        with server.client() as c:
            assert c.post("/v1/video/generations", json=body).status_code == 200
            proxy.frozen.set()  # the host still accepts, and answers nothing
            answer = c.post("/v1/video/generations", json=body)
            assert answer.status_code == 503
            error = answer.json()
            assert error["code"] == "store_unavailable"
            assert "within 1 s" in error["message"]
            assert "database unavailable" in error["message"]
            assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive, not ready
            proxy.frozen.clear()
            for _ in range(100):  # the pool replaces the connections that hung
                if c.post("/v1/video/generations", json=body).status_code == 200:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the gateway did not recover")
    finally:
        proxy.close()  # first: connections it held half-open would each delay the shutdown
        server.stop()
        asyncio.run(_drop(name))


# -- a SQLite file that is gone, replaced, full or read-only ---------------------------------------


async def test_readiness_notices_a_deleted_sqlite_file(store: SqlStore, tmp_path: Path) -> None:
    ready = Readiness(store, stale_after=60, clock=time.time)
    assert (await ready.checks())["database"] == "ok"
    (tmp_path / "engine.db").unlink()
    database = (await ready.checks())["database"]
    assert database.startswith("unreachable: the database file ")
    assert "is gone (deleted or moved)" in database


async def test_readiness_notices_a_replaced_sqlite_file(store: SqlStore, tmp_path: Path) -> None:
    ready = Readiness(store, stale_after=60, clock=time.time)
    assert (await ready.checks())["database"] == "ok"
    shutil.copy(tmp_path / "engine.db", tmp_path / "copy.db")
    (tmp_path / "copy.db").replace(tmp_path / "engine.db")  # a restore from a backup, say
    database = (await ready.checks())["database"]
    assert "was replaced by another file since it was opened" in database


async def test_readiness_notices_a_sqlite_file_that_cannot_be_written(
    store: SqlStore, tmp_path: Path
) -> None:
    ready = Readiness(store, stale_after=60, clock=time.time)
    assert (await ready.checks())["database"] == "ok"
    files = [str(tmp_path / "engine.db"), str(tmp_path / "engine.db-wal")]
    # Immutable: not even root may write (the -shm file stays writable: it is mapped).
    made = await asyncio.to_thread(subprocess.run, ["chattr", "+i", *files], capture_output=True)
    if made.returncode:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        database = (await ready.checks())["database"]
    finally:
        await asyncio.to_thread(subprocess.run, ["chattr", "-i", *files], check=True)
    assert database.startswith("unreachable: database unavailable: ")
    assert (await ready.checks())["database"] == "ok"  # writable again


_FULL_DISK = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from reelgate.api.health import Readiness
    from reelgate.store.sql import open_store

    async def main(root):
        store = await open_store(f"sqlite:///{root}/r.db")
        await store.migrate()
        ready = Readiness(store, stale_after=60, clock=time.time)
        seen = [(await ready.checks())["database"]]
        with open(f"{root}/filler", "wb") as f:
            try:
                while True:
                    f.write(b"x" * 65536)
                    f.flush()
            except OSError:
                pass
        seen.append((await ready.checks())["database"])
        os.unlink(f"{root}/filler")
        seen.append((await ready.checks())["database"])
        await store.close()
        print(json.dumps(seen))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_readiness_notices_a_full_disk_under_a_sqlite_file(tmp_path: Path) -> None:
    """On a real full filesystem: a 4 MB tmpfs in a mount namespace of its own."""
    root = tmp_path / "disk"
    root.mkdir()
    script = tmp_path / "full.py"
    script.write_text(_FULL_DISK)
    command = f"mount -t tmpfs -o size=4m tmpfs {root} && exec {sys.executable} {script} {root}"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120
    )
    if done.returncode and "mount" in done.stderr and "permission" in done.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    before, full, after = json.loads(done.stdout)
    assert before == "ok"
    assert full.startswith("unreachable: the disk holding ")
    assert full.endswith("is full (0 bytes free)") or "bytes free)" in full
    assert after == "ok"
