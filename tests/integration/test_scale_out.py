"""Scaling out on PostgreSQL: worker processes and an API replica sharing one database (issue #4).

Real processes (``reelgate worker``, ``reelgate serve --no-worker``) run against one fresh
database per test and the shipped Ark simulator, served from a thread of this process. Tasks are
created through a runtime in this process, which also LISTENs like any API replica. What is
checked is what a user relies on: every task ends, each is created upstream once and looked at by
one worker at a time, and a worker that is killed or stopped loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
import pytest

from reelgate.assembly import Runtime, start_runtime
from reelgate.core.ids import ApiToken, NewToken
from reelgate.core.lifecycle import Status, Task
from reelgate.core.request import VideoRequest
from reelgate.settings import Settings
from reelgate.testing import ArkSimulator, ManualClock, SimulatorHandle, serve_in_thread
from tests.conftest import LiveServer
from tests.pg import _drop, _pg_database, pg_url

pytestmark = pytest.mark.anyio

T = TypeVar("T")

ARK_KEY = "ark-scale-key"
MODEL = "doubao-seedance-1-0-pro-250528"
SECRET = "scale-out-test-secret-key"
MODERATED = "[sim:fail=OutputVideoSensitiveContentDetected]"
LEASE_SECONDS = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Cluster:
    """One database, one simulator, and the reelgate processes started on them."""

    db: str
    workdir: Path
    sim: ArkSimulator
    ark: SimulatorHandle
    runtime: Runtime
    owner: ApiToken
    token: NewToken
    pg: asyncpg.Connection
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    replicas: list[LiveServer] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
        env.update(
            {
                "REELGATE_DATABASE_URL": pg_url(self.db),
                "REELGATE_ARK_API_KEY": ARK_KEY,
                "REELGATE_ARK_BASE_URL": self.ark.base_url,
                "REELGATE_SANDBOX_ENABLED": "false",
                "REELGATE_SECRET_KEY": SECRET,
                "REELGATE_DATA_DIR": str(self.workdir / "data"),
                "REELGATE_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
                "REELGATE_WORKER_POLL_INTERVAL": "0.1",
                "REELGATE_TRACKING_TYPICAL_SECONDS": "1",
                "REELGATE_LOG_LEVEL": "warning",
                "REELGATE_ALLOW_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
            }
        )
        return env

    def start_worker(self) -> subprocess.Popen[bytes]:
        with (self.workdir / f"worker-{len(self.workers)}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reelgate", "worker"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(proc)
        return proc

    def start_replica(self) -> LiveServer:
        workdir = self.workdir / f"replica-{len(self.replicas)}"
        workdir.mkdir()
        replica = LiveServer(workdir, self.env, token=self.token.plaintext)
        self.replicas.append(replica)
        replica.start("--no-worker")
        return replica

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.stop(signal.SIGKILL)
        for proc in self.workers:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}:\n{p.read_text()[-3000:]}" for p in sorted(self.workdir.glob("**/*.log"))
        )

    async def create(self, prompts: Sequence[str]) -> list[Task]:
        service = self.runtime.service
        made: list[Task] = []
        for start in range(0, len(prompts), 50):
            made += await asyncio.gather(
                *(
                    service.create(self.owner, VideoRequest(model=MODEL, prompt=p, duration=5))
                    for p in prompts[start : start + 50]
                )
            )
        return made

    async def unfinished(self) -> int:
        return int(
            await self.pg.fetchval(
                "SELECT count(*) FROM tasks WHERE status IN ('queued', 'in_progress')"
            )
        )

    async def all_ended(self) -> bool:
        return await self.unfinished() == 0

    async def rows(self) -> dict[str, asyncpg.Record]:
        return {r["id"]: r for r in await self.pg.fetch("SELECT * FROM tasks")}

    async def leases(self, like: str = "%") -> int:
        return int(
            await self.pg.fetchval(
                "SELECT count(*) FROM tasks WHERE lease_owner IS NOT NULL AND lease_owner LIKE $1",
                like,
            )
        )

    async def until(self, check: Callable[[], Awaitable[T] | T], within: float, what: str) -> T:
        """Poll ``check`` until it is truthy; fail with the processes' logs after ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            for proc in self.workers:
                assert proc.poll() in (None, 0, -signal.SIGKILL), self.logs()
            if time.monotonic() > deadline:
                left = await self.unfinished()
                raise AssertionError(
                    f"{what}: not within {within} s ({left} tasks unfinished)\n{self.logs()}"
                )
            await asyncio.sleep(0.1)

    async def exit_code(self, proc: subprocess.Popen[bytes], within: float) -> int:
        await self.until(lambda: proc.poll() is not None, within, f"worker {proc.pid} exited")
        assert proc.returncode is not None
        return proc.returncode

    async def fault(self, endpoint: str, kind: str, count: int) -> None:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"{self.ark.url}/_sim/faults",
                json={"endpoint": endpoint, "kind": kind, "count": count},
            )
        assert r.status_code == 200, r.text


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    db = await _pg_database()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_drop, db)
        sim = ArkSimulator(api_keys={ARK_KEY}, queued_seconds=0.2, running_seconds=0.3)
        ark = serve_in_thread(sim)
        stack.callback(ark.stop)
        runtime = await start_runtime(
            Settings(
                database_url=pg_url(db),
                ark_api_key=ARK_KEY,
                ark_base_url=ark.base_url,
                sandbox_enabled=False,
                secret_key=SECRET,
                data_dir=tmp_path / "data",
                log_level="warning",
                allow_private_networks=["127.0.0.0/8"],
                # Long enough that a copy this process kept would be served stale, had a
                # change elsewhere not dropped it.
                task_cache_ttl=300,
            ),
            run_worker=False,
        )
        stack.push_async_callback(runtime.close)
        pg = await asyncpg.connect(pg_url(db))
        stack.push_async_callback(pg.close)
        owner, token = await runtime.service.create_token("scale-out")
        c = Cluster(db, tmp_path, sim, ark, runtime, owner, token, pg)
        stack.callback(c.stop_all)
        yield c


def markers(ids: Iterable[str]) -> Counter[str]:
    """What ``creates_by_marker`` must be when each task was created upstream exactly once."""
    return Counter(f"rg-{task_id}" for task_id in ids)


def assert_each_created_once(c: Cluster, rows: dict[str, asyncpg.Record]) -> None:
    assert c.sim.creates_by_marker == markers(rows), "a task was created upstream twice or never"
    assert c.sim.max_creates_per_marker == 1
    assert len(c.sim.tasks) == len(rows), "the simulator gave two creates one id"
    upstream = [r["upstream_id"] for r in rows.values()]
    assert None not in upstream
    assert len(set(upstream)) == len(rows), "two tasks share an upstream id"
    for task_id, row in rows.items():
        assert c.sim.tasks[row["upstream_id"]].body["safety_identifier"] == f"rg-{task_id}"


# -- many workers, many tasks ----------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 4])
async def test_workers_end_every_task_creating_each_once(cluster: Cluster, workers: int) -> None:
    n = 2000
    for _ in range(workers):
        cluster.start_worker()
    prompts = [f"crowd {i}" + (f" {MODERATED}" if i % 10 == 0 else "") for i in range(n)]
    created = {t.id: t for t in await cluster.create(prompts)}
    await cluster.until(cluster.all_ended, 90, "every task ended")

    rows = await cluster.rows()
    assert rows.keys() == created.keys()
    outcomes = Counter(
        (r["status"], r["error_code"], MODERATED in created[i].request["prompt"])
        for i, r in rows.items()
    )
    # Nothing else: in particular no quota or rate-limit failure, although the simulator takes
    # 120 queued tasks per account and reelgate's admission queue had to hold the rest.
    assert outcomes == {
        ("success", "", False): n * 9 // 10,
        ("failure", "content_moderation", True): n // 10,
    }
    for row in rows.values():
        if row["status"] == "success":
            assert row["result_url"].startswith(f"{cluster.ark.url}/tos/")
    assert_each_created_once(cluster, rows)
    assert sum(cluster.sim.creates_by_prompt.values()) == n
    at_once = cluster.sim.max_concurrent_lookups_per_task
    assert at_once == 1, f"{at_once} look-ups of one task were in flight at once"


# -- crashes and shutdown --------------------------------------------------------------------------
@pytest.mark.postgres
async def test_a_worker_killed_mid_submit_loses_nothing_and_creates_nothing_twice(
    cluster: Cluster,
) -> None:
    # Creates reach the simulator (the task exists upstream) and then hang: the answer never
    # comes back to the worker before it dies.
    cluster.sim.timeout_hang_s = 6.0
    await cluster.fault("create", "timeout", 16)
    created = await cluster.create([f"crash while submitting {i}" for i in range(40)])
    doomed = cluster.start_worker()
    await cluster.until(lambda: cluster.sim.calls["create"] >= 1, 30, "a create was sent")
    os.killpg(doomed.pid, signal.SIGKILL)
    assert await cluster.exit_code(doomed, 10) == -signal.SIGKILL
    assert cluster.sim.tasks, "the dead worker's creates reached the simulator"
    assert not any(r["upstream_id"] for r in (await cluster.rows()).values()), (
        "the answers were lost, so no upstream id can have been recorded"
    )
    cluster.sim.faults.clear()

    cluster.start_worker()
    await cluster.until(cluster.all_ended, 60, "every task ended after the crash")
    rows = await cluster.rows()
    assert rows.keys() == {t.id for t in created}
    assert {r["status"] for r in rows.values()} == {"success"}
    assert_each_created_once(cluster, rows)


@pytest.mark.postgres
async def test_a_worker_killed_mid_batch_loses_nothing(cluster: Cluster) -> None:
    # The first batch look-up hangs: the worker dies while it is in flight.
    cluster.sim.timeout_hang_s = 6.0
    await cluster.fault("list", "timeout", 1)
    created = await cluster.create([f"crash while looking {i}" for i in range(40)])
    doomed = cluster.start_worker()
    await cluster.until(lambda: cluster.sim.calls["list"] >= 1, 30, "a batch look-up was sent")
    assert await cluster.leases(f"%:{doomed.pid}:%") > 0
    os.killpg(doomed.pid, signal.SIGKILL)
    assert await cluster.exit_code(doomed, 10) == -signal.SIGKILL
    assert len(cluster.sim.tasks) == len(created)

    cluster.start_worker()
    await cluster.until(cluster.all_ended, 60, "every task ended after the crash")
    rows = await cluster.rows()
    assert {r["status"] for r in rows.values()} == {"success"}
    assert_each_created_once(cluster, rows)


async def stuck_then_second_worker(cluster: Cluster, endpoint: str, hung: int) -> list[Task]:
    """40 tasks; a first worker whose ``hung`` calls to ``endpoint`` hang for three leases, then a
    second worker. Returns the tasks once both workers have exited after SIGTERM (a stopping
    worker finishes its round, so whatever the first one still meant to send has been sent)."""
    cluster.sim.timeout_hang_s = 3 * LEASE_SECONDS
    await cluster.fault(endpoint, "timeout", hung)
    created = await cluster.create([f"longer than a lease {i}" for i in range(40)])
    first = cluster.start_worker()
    await cluster.until(lambda: cluster.sim.calls[endpoint] >= hung, 30, f"{endpoint} hung")
    assert await cluster.leases(f"%:{first.pid}:%") > 0
    second = cluster.start_worker()
    await cluster.until(cluster.all_ended, 60, "every task ended")
    for worker in (first, second):
        os.killpg(worker.pid, signal.SIGTERM)
        assert await cluster.exit_code(worker, 60) == 0, cluster.logs()
    rows = await cluster.rows()
    assert rows.keys() == {t.id for t in created}
    assert {r["status"] for r in rows.values()} == {"success"}
    return created


@pytest.mark.postgres
async def test_a_submission_round_longer_than_the_lease_creates_nothing_twice(
    cluster: Cluster,
) -> None:
    # The first worker claims all 40 tasks; its first 16 creates hang, so the other 24 wait for
    # a submission slot while their leases run out, and the second worker claims and submits them.
    await stuck_then_second_worker(cluster, "create", 16)
    twice = sorted(m for m, n in cluster.sim.creates_by_marker.items() if n > 1)
    assert not twice, f"{len(twice)} tasks were created upstream twice, e.g. {twice[:3]}"
    assert_each_created_once(cluster, await cluster.rows())


@pytest.mark.postgres
async def test_a_look_up_longer_than_the_lease_is_not_repeated_by_another_worker(
    cluster: Cluster,
) -> None:
    # The first worker's batch look-up hangs past its lease; the second may not look at those
    # tasks while it is still in flight.
    await stuck_then_second_worker(cluster, "list", 1)
    at_once = cluster.sim.max_concurrent_lookups_per_task
    assert at_once == 1, f"{at_once} look-ups of one task were in flight at once"
    assert_each_created_once(cluster, await cluster.rows())


@pytest.mark.postgres
async def test_sigterm_finishes_the_round_and_gives_back_every_lease(cluster: Cluster) -> None:
    cluster.sim.timeout_hang_s = 3.0
    await cluster.fault("create", "timeout", 16)
    created = await cluster.create([f"stop while submitting {i}" for i in range(40)])
    worker = cluster.start_worker()
    await cluster.until(lambda: cluster.sim.calls["create"] >= 1, 30, "a create was sent")
    assert await cluster.leases(f"%:{worker.pid}:%") > 0
    os.killpg(worker.pid, signal.SIGTERM)

    assert await cluster.exit_code(worker, 30) == 0, cluster.logs()
    assert await cluster.leases() == 0
    # A submission in flight at SIGTERM is recorded, not lost: every task the simulator made
    # is known by its upstream id.
    rows = await cluster.rows()
    upstream = {t.id: t.body["safety_identifier"] for t in list(cluster.sim.tasks.values())}
    assert upstream
    for upstream_id, marker in upstream.items():
        assert rows[marker.removeprefix("rg-")]["upstream_id"] == upstream_id

    cluster.start_worker()
    await cluster.until(cluster.all_ended, 60, "every task ended after the restart")
    rows = await cluster.rows()
    assert rows.keys() == {t.id for t in created}
    assert {r["status"] for r in rows.values()} == {"success"}
    assert_each_created_once(cluster, rows)


# -- processes that see each other's changes -------------------------------------------------------
@pytest.mark.postgres
async def test_a_change_in_a_worker_wakes_a_waiter_in_another_process(cluster: Cluster) -> None:
    service = cluster.runtime.service
    # Queued upstream for 5 s: after the submit nothing visible changes for a while, so what the
    # waiter is handed can be compared with the database.
    [task] = await cluster.create(["wake me [sim:queued=5]"])
    wait = 30.0
    waiter = asyncio.ensure_future(service.wait_change(cluster.owner, task.id, task.version, wait))
    await asyncio.sleep(0)  # let it start waiting (it holds the created task in its cache)
    assert not waiter.done()
    cluster.start_worker()
    started = time.monotonic()
    seen = await waiter
    took = time.monotonic() - started

    assert seen.version > task.version
    assert took < wait, "woken by the timeout, not by the worker's change"
    assert seen.upstream_id is not None
    stored = await cluster.runtime.store.find_task(task.id)
    assert stored is not None
    assert (seen.version, seen.status, seen.upstream_id, seen.submitted_at) == (
        stored.version,
        stored.status,
        stored.upstream_id,
        stored.submitted_at,
    )

    # Every later change wakes the waiter too, up to the end.
    while not seen.status.terminal:
        before = seen.version
        seen = await service.wait_change(cluster.owner, task.id, before, wait)
        assert seen.version > before, "a wait ended without a change"
    assert seen.status is Status.SUCCESS
    assert seen == await cluster.runtime.store.find_task(task.id)


@pytest.mark.postgres
async def test_an_api_replica_and_a_worker_share_one_database(cluster: Cluster) -> None:
    replica = cluster.start_replica()
    cluster.start_worker()
    body = {"model": MODEL, "prompt": "through the replica", "duration": 5}
    with replica.client() as client:
        r = client.post("/v1/video/generations", json=body)
    assert r.status_code == 200, r.text
    data = await asyncio.to_thread(replica.wait_terminal, r.json()["task_id"], 60)
    assert data["status"] == "success", data
    assert data["fail_reason"].startswith(f"{cluster.ark.url}/tos/")

    # Concurrent duplicates with one Idempotency-Key make one task and one upstream create.
    twin = {"model": MODEL, "prompt": "sent eight times at once", "duration": 5}
    start = threading.Barrier(8)

    def send(_: int) -> httpx.Response:
        with replica.client() as client:
            start.wait(timeout=10)
            return client.post(
                "/v1/video/generations", json=twin, headers={"Idempotency-Key": "same-one"}
            )

    def send_all() -> list[httpx.Response]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(send, range(8)))

    answers = await asyncio.to_thread(send_all)
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    ids = {a.json()["task_id"] for a in answers}
    assert len(ids) == 1
    data = await asyncio.to_thread(replica.wait_terminal, ids.pop(), 60)
    assert data["status"] == "success", data
    rows = await cluster.rows()
    assert len(rows) == 2
    assert cluster.sim.creates_by_prompt[twin["prompt"]] == 1
    assert_each_created_once(cluster, rows)


def test_the_simulator_never_gives_two_creates_one_id() -> None:
    # Every check above that upstream ids are distinct relies on it: Ark's ids are unique.
    sim = ArkSimulator(
        api_keys={ARK_KEY}, queued_seconds=0, running_seconds=1, clock=ManualClock(1_763_937_600.0)
    )
    body = {"model": MODEL, "content": [{"type": "text", "text": "same second"}]}
    ids = [sim.create(ARK_KEY, body).id for _ in range(5000)]
    assert len(set(ids)) == len(ids) == len(sim.tasks)
