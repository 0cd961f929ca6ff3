"""Chaos suite (issue #9): a task load through reelgate's public API against the Ark simulator
with random upstream faults, while the API and worker processes are killed with SIGKILL at random
moments and restarted; then it proves what README promises and prints the figures.

    python -m bench.chaos --db sqlite --tasks 1000 --kills 5 --seed 7     # from the repo root
    make chaos                                                            # both topologies

Topologies: ``sqlite``, one ``reelgate serve`` with its worker inside; ``postgres``, two
``reelgate serve --no-worker`` and two ``reelgate worker`` on one fresh database (the server of
tests/pg.py, required). The simulator runs as ``reelgate simulate ark`` in a process of its own;
each task's upstream timing and outcome are scripted with prompt markers. Three tokens, all with a
webhook endpoint: ``rich`` (a quota it never exhausts), ``tight`` (a quota that runs short, so
some creates are refused with 402) and ``open`` (no quota). Clients retry connection errors,
5xx and 429 with the same ``Idempotency-Key``, as a real client would, and poll until the end.

Verified: no task lost (every accepted create exists, is known to the client and has ended),
none submitted twice (the simulator's creates per ``safety_identifier``), none stuck (all ended
within a bound after the load), every webhook delivered with one ``webhook-id`` per event, and the
ledger exact (balance == sum of the ledger == grants - the final cost of the token's tasks, each
ended task closed exactly once). Everything random is drawn from ``--seed``; a failing run prints
the command that replays its plan. Exit status 1 when a check fails; the run's directory (logs
of every process; ``CHAOS_LOG_LEVEL=info`` makes them verbose) is kept then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from bench.procs import stop
from tests.conftest import LiveServer, free_port, server_env
from tests.pg import _drop, _pg_database, pg_url
from tests.receiver import Receiver

MODEL = "doubao-seedance-1-0-pro-250528"
PRICE = 15_000_000  # per million tokens, in the run's unit
PRICES = {MODEL: [{"per_million_tokens": PRICE}]}
ARK_KEY = "chaos-ark-key"
ADMIN = "chaos-admin-secret"
SECRET = "chaos-secret-key-shared-by-every-process"  # noqa: S105 - a throwaway test secret
LEASE_SECONDS = 3
# Webhook retries after 5 s x scale, 5 min x scale, ...: 0.01 s, 0.6 s, 3.6 s, 14 s.
WEBHOOK_RETRY_SCALE = 0.002
HOOK_500_SHARE = 0.1  # of webhook posts answered 500 (retried under the same id)
FAULT_KINDS = ("500", "429", "timeout", "malformed", "reset", "slow")
# reelgate reads with batch lists (single GETs only for ids a list missed): any_read is the next
# GET or list, so every fault meets a request.
FAULT_ENDPOINTS = ("create", "list", "any_read")
TERMINAL = ("success", "failure")
ROOT = Path(__file__).resolve().parent.parent


# -- the plan: everything random, drawn from the seed ----------------------------------------------
@dataclass(frozen=True)
class Spec:
    """One create of the load."""

    n: int
    owner: str  # the name of the token that sends it
    at: float  # seconds after the load starts
    key: str  # Idempotency-Key
    body: dict[str, Any]
    callback: bool  # the create names the task receiver as its callback_url


@dataclass(frozen=True)
class Kill:
    at: float
    victims: tuple[str, ...]
    down: float  # seconds before the restart


@dataclass(frozen=True)
class FaultAt:
    at: float
    endpoint: str
    kind: str
    count: int


@dataclass(frozen=True)
class Plan:
    db: str
    tasks: int
    kills: int
    seed: int
    load_seconds: float
    members: tuple[str, ...]
    specs: tuple[Spec, ...]
    kill_plan: tuple[Kill, ...]
    faults: tuple[FaultAt, ...]
    hook_answers: tuple[int, ...]  # the statuses webhook receivers answer, in turn
    stuck_bound: float  # every task ends within this many seconds after the last create
    webhook_bound: float  # and every webhook arrives within this many more

    @property
    def replay(self) -> str:
        return (
            f"python -m bench.chaos --db {self.db} --tasks {self.tasks} --kills {self.kills} "
            f"--seed {self.seed}"
        )


TOKENS = {"rich": 5, "tight": 3, "open": 2}  # token name: share of the creates


def draw_plan(db: str, tasks: int, kills: int, seed: int) -> Plan:
    rng = random.Random(seed)
    load = max(8.0, tasks * 0.05)
    members = ("serve",) if db == "sqlite" else ("api-0", "api-1", "worker-0", "worker-1")
    specs = []
    for n, at in enumerate(sorted(rng.uniform(0, load) for _ in range(tasks))):
        queued, running = rng.uniform(0.1, 1.0), rng.uniform(0.3, 2.5)
        prompt = (
            f"chaos {seed}/{n}: a lighthouse [sim:queued={queued:.2f}][sim:running={running:.2f}]"
        )
        roll = rng.random()
        if roll < 0.08:
            prompt += " [sim:fail=OutputVideoSensitiveContentDetected]"
        elif roll < 0.11:
            prompt += " [sim:reject=InputTextSensitiveContentDetected]"
        body: dict[str, Any] = {"model": MODEL, "prompt": prompt, "duration": rng.choice([5, 10])}
        callback = rng.random() < 0.3
        owner = rng.choices(list(TOKENS), weights=list(TOKENS.values()))[0]
        key = f"chaos-{seed}-{n}-{rng.getrandbits(32):08x}"
        specs.append(Spec(n, owner, at, key, body, callback))
    kill_plan = []
    for at in sorted(rng.uniform(0.1 * load, 0.9 * load) for _ in range(kills)):
        victims = tuple(sorted(rng.sample(members, rng.randint(1, len(members)))))
        kill_plan.append(Kill(at, victims, rng.uniform(0.2, 1.5)))
    faults, at = [], 0.0
    while (at := at + rng.uniform(1.0, 3.0)) < load:
        faults.append(
            FaultAt(at, rng.choice(FAULT_ENDPOINTS), rng.choice(FAULT_KINDS), rng.randint(1, 3))
        )
    answers = tuple(500 if rng.random() < HOOK_500_SHARE else 200 for _ in range(4 * tasks))
    return Plan(
        db,
        tasks,
        kills,
        seed,
        load,
        members,
        tuple(specs),
        tuple(kill_plan),
        tuple(faults),
        answers,
        stuck_bound=60.0,
        # A delivery claimed by a worker that is then killed waits out the sender's lease
        # (30 s, engine/webhooks.py) before another worker sends it.
        webhook_bound=60.0,
    )


# -- the processes ---------------------------------------------------------------------------------
@dataclass
class WorkerProcess:
    """``reelgate worker`` in its own process group, restartable (the API side is LiveServer)."""

    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "worker.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reelgate", "worker"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if sig == signal.SIGTERM:
            stop(self.proc)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)
        self.proc = None


@dataclass
class Member:
    """One reelgate process of the topology: how to (re)start it and how to stop it."""

    name: str
    start: Callable[[], None]
    stop: Callable[[int], None]


def start_simulator(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``reelgate simulate ark`` in a process of its own: its work does not compete with the
    load for this interpreter. Task timings come from prompt markers."""
    port = free_port()
    with (workdir / "simulator.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "reelgate", "simulate", "ark", "--port", str(port)),
                *("--key", ARK_KEY, "--queued-seconds", "0.3", "--running-seconds", "1"),
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/_sim/stats", timeout=1).raise_for_status()
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"the simulator did not start; see {workdir}") from None
            time.sleep(0.05)


def cluster_env(workdir: Path, sim_url: str, database_url: str | None) -> dict[str, str]:
    env = server_env(
        workdir,
        REELGATE_ARK_API_KEY=ARK_KEY,
        REELGATE_ARK_BASE_URL=f"{sim_url}/api/v3",
        REELGATE_ARK_TIMEOUT="3",
        REELGATE_SANDBOX_ENABLED="false",
        REELGATE_SECRET_KEY=SECRET,
        REELGATE_ADMIN_TOKEN=ADMIN,
        REELGATE_PRICES=json.dumps(PRICES),
        REELGATE_WEBHOOK_RETRY_SCALE=str(WEBHOOK_RETRY_SCALE),
        REELGATE_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        REELGATE_WORKER_POLL_INTERVAL="0.1",
        # Copies of results are not what is checked here; they would only cost CPU.
        REELGATE_MEDIA_MIRROR="false",
        REELGATE_LOG_LEVEL=os.environ.get("CHAOS_LOG_LEVEL", "warning"),
    )
    if database_url is not None:
        env["REELGATE_DATABASE_URL"] = database_url
    return env


def members_of(plan: Plan, workdir: Path, env: dict[str, str]) -> tuple[list[Member], list[str]]:
    """The topology's processes (not started) and the API base URLs."""
    members, urls = [], []
    for name in plan.members:
        home = workdir / name
        home.mkdir()
        if name.startswith("worker"):
            worker = WorkerProcess(home, env)
            members.append(Member(name, worker.start, worker.stop))
            continue
        server = LiveServer(home, env)
        args = () if plan.db == "sqlite" else ("--no-worker",)
        members.append(Member(name, lambda s=server, a=args: s.start(*a), server.stop))
        urls.append(server.url)
    return members, urls


# -- the load --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    spec: Spec
    task_id: str = ""
    refused: str = ""  # the code of a definitive refusal (402 insufficient_quota)
    status: str = ""  # the last status seen
    ended_at: float = 0.0  # monotonic time the client saw the end
    lost_answers: int = 0  # create attempts whose answer never came back
    not_found: int = 0  # polls answered 404


@dataclass
class Load:
    """The clients: each create is sent at its time and its task polled until it ends."""

    plan: Plan
    urls: list[str]
    tokens: dict[str, str]  # name: plaintext
    task_hook: str
    http: httpx.AsyncClient
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)  # why requests were sent again
    unexpected: list[str] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)
    answered: int = 0
    _all_answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def all_created(self) -> None:
        """Until every create of the plan has had its answer."""
        await self._all_answered.wait()

    async def send(
        self,
        method: str,
        path: str,
        token: str,
        *,
        lost: Callable[[], None] = lambda: None,
        **kw: Any,
    ) -> httpx.Response:
        """Send until answered with neither a 5xx nor a 429, moving to another API process after
        each failure as a client behind a load balancer would; ``lost`` is called when a request
        may have reached a server whose answer never came back."""
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        first = self._rng.randrange(len(self.urls))
        attempt = 0
        while True:
            url = self.urls[(first + attempt) % len(self.urls)]
            try:
                r = await self.http.request(method, url + path, headers=headers, **kw)
            except httpx.TransportError as exc:
                self.retried[type(exc).__name__] += 1
                if not isinstance(exc, httpx.ConnectError | httpx.PoolTimeout):
                    lost()
            else:
                if r.status_code < 500 and r.status_code != 429:
                    return r
                self.retried[f"HTTP {r.status_code}"] += 1
            attempt += 1
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt) * self._rng.uniform(0.5, 1.0))

    async def one(self, spec: Spec, start: float) -> None:
        out = self.outcomes[spec.n] = Outcome(spec)
        token = self.tokens[spec.owner]
        await asyncio.sleep(max(0.0, start + spec.at - time.monotonic()))
        body = dict(spec.body, callback_url=self.task_hook) if spec.callback else spec.body

        def lost() -> None:
            out.lost_answers += 1

        try:
            r = await self.send(
                "POST",
                "/v1/video/generations",
                token,
                json=body,
                headers={"Idempotency-Key": spec.key},
                lost=lost,
            )
        finally:
            self.answered += 1
            if self.answered == len(self.plan.specs):
                self._all_answered.set()
        if r.status_code == 402:
            out.refused = r.json()["code"]
            return
        if r.status_code != 200:
            self.unexpected.append(f"create {spec.n}: HTTP {r.status_code} {r.text[:200]}")
            return
        out.task_id = r.json()["task_id"]
        path = f"/v1/video/generations/{out.task_id}"
        while out.status not in TERMINAL:
            r = await self.send("GET", path, token, params={"wait": "3"})
            if r.status_code == 200:
                out.status = r.json()["data"]["status"]
                continue
            if r.status_code == 404:
                out.not_found += 1
            else:
                self.unexpected.append(f"poll {out.task_id}: HTTP {r.status_code} {r.text[:200]}")
            await asyncio.sleep(0.5)
        out.ended_at = time.monotonic()


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def check(self, what: str, bad: list[str]) -> None:
        """One verdict line; the first few offenders when there are any."""
        self.say(f"  {'ok  ' if not bad else 'FAIL'} {what}" + (f": {len(bad)}" if bad else ""))
        for line in bad[:10]:
            self.say(f"       {line}")
        if bad:
            self.failures.append(what)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Run:
    plan: Plan
    workdir: Path
    database_url: str | None = None  # PostgreSQL; None: a SQLite file in workdir
    report: Report = field(default_factory=Report)
    members: dict[str, Member] = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)
    sim_url: str = ""
    hooks: dict[str, Receiver] = field(default_factory=dict)  # "endpoint" | "task"
    tokens: dict[str, str] = field(default_factory=dict)  # name: plaintext
    grants: dict[str, int] = field(default_factory=dict)  # name: granted quota
    kills: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    def execute(self) -> Report:
        plan = self.plan
        self.report.say(
            f"chaos: {plan.db}, {plan.tasks} tasks over {plan.load_seconds:.0f} s, "
            f"{plan.kills} kills of {', '.join(plan.members)}, seed {plan.seed}"
        )
        self.report.say(f"  replay: {plan.replay}; logs in {self.workdir}")
        began = time.monotonic()
        with contextlib.ExitStack() as stack:
            sim, self.sim_url = start_simulator(self.workdir)
            stack.callback(stop, sim)
            for name in ("endpoint", "task"):
                hook = self.hooks[name] = Receiver().start()
                stack.callback(hook.stop)
                hook.answers.extend((status, {}) for status in plan.hook_answers)
            env = cluster_env(self.workdir, self.sim_url, self.database_url)
            members, self.urls = members_of(plan, self.workdir, env)
            for member in members:
                self.members[member.name] = member
                stack.callback(member.stop, signal.SIGTERM)
                member.start()
            self.setup_tokens()
            asyncio.run(self.drive())
        verdict = "PASS" if self.report.ok else "FAIL"
        self.report.say(f"  took {time.monotonic() - began:.0f} s: {verdict}")
        return self.report

    def setup_tokens(self) -> None:
        """Three tokens through the admin API, each with the webhook endpoint; two with quotas:
        ``rich`` more than it can spend, ``tight`` 60 % of what its creates would hold."""
        admin = {"Authorization": f"Bearer {ADMIN}"}
        ids = {}
        with httpx.Client(base_url=self.urls[0], timeout=30) as http:
            for name in TOKENS:
                r = http.post(
                    "/v1/admin/tokens",
                    headers=admin,
                    json={"name": name, "webhook_url": self.hooks["endpoint"].url},
                )
                r.raise_for_status()
                ids[name], self.tokens[name] = r.json()["data"]["id"], r.json()["data"]["token"]
            estimate = {}
            for duration in {s.body["duration"] for s in self.plan.specs}:
                r = http.post(
                    "/v1/video/generations/quote",
                    headers={"Authorization": f"Bearer {self.tokens['open']}"},
                    json={"model": MODEL, "prompt": "how much", "duration": duration},
                )
                r.raise_for_status()
                estimate[duration] = int(r.json()["data"]["amount"])
            tight = [s for s in self.plan.specs if s.owner == "tight"]
            held = sum(estimate[s.body["duration"]] for s in tight)
            self.grants = {"rich": 10**13, "tight": held * 6 // 10, "open": 0}
            for name in ("rich", "tight"):
                r = http.post(
                    f"/v1/admin/tokens/{ids[name]}/quota",
                    headers=admin,
                    json={"grant": self.grants[name], "note": "chaos"},
                )
                r.raise_for_status()

    async def chaos(self, start: float) -> None:
        """SIGKILL the planned processes at the planned moments; restart them after a pause."""
        for kill in self.plan.kill_plan:
            await asyncio.sleep(max(0.0, start + kill.at - time.monotonic()))
            at = time.monotonic() - start
            victims = [self.members[name] for name in kill.victims]
            await asyncio.gather(*(asyncio.to_thread(m.stop, signal.SIGKILL) for m in victims))
            await asyncio.sleep(kill.down)
            began = time.monotonic()
            await asyncio.gather(*(asyncio.to_thread(m.start) for m in victims))
            self.kills.append(
                f"{at:.1f} s: {'+'.join(kill.victims)} (down {kill.down:.1f} s, "
                f"restarted in {time.monotonic() - began:.1f} s)"
            )

    async def inject(self, http: httpx.AsyncClient, start: float) -> None:
        """Upstream faults at the planned moments: each hits the next requests to its endpoint."""
        for fault in self.plan.faults:
            await asyncio.sleep(max(0.0, start + fault.at - time.monotonic()))
            try:
                r = await http.post(
                    f"{self.sim_url}/_sim/faults",
                    json={"endpoint": fault.endpoint, "kind": fault.kind, "count": fault.count},
                )
                r.raise_for_status()
            except httpx.HTTPError as exc:  # a busy machine: the run goes on with one fault less
                self.faults[f"not injected ({type(exc).__name__})"] += 1
            else:
                self.faults[f"{fault.endpoint}/{fault.kind}"] += fault.count

    async def drive(self) -> None:
        plan, say = self.plan, self.report.say
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=httpx.Timeout(15, connect=3), limits=limits) as http:
            load = Load(plan, self.urls, self.tokens, self.hooks["task"].url, http)
            start = time.monotonic()
            clients = [asyncio.create_task(load.one(spec, start)) for spec in plan.specs]
            progress = asyncio.create_task(self.progress(load, start))
            try:
                await asyncio.gather(
                    self.chaos(start), self.inject(http, start), load.all_created()
                )
                stopped = time.monotonic()
                await asyncio.wait(clients, timeout=plan.stuck_bound)
            finally:  # stuck clients, or every client when the harness itself failed
                for task in (*clients, progress):
                    task.cancel()
                done = await asyncio.gather(*clients, progress, return_exceptions=True)
            for crashed in done:
                if isinstance(crashed, Exception):
                    load.unexpected.append(f"a client crashed: {crashed!r}")
            ended = [o.ended_at for o in load.outcomes.values() if o.ended_at]
            last_end = max(ended, default=stopped) - stopped
            say(f"  load: {stopped - start:.1f} s; last task ended {max(0, last_end):.1f} s later")
            say(f"  kills: {'; '.join(self.kills)}")
            db = await read_database(self.workdir, self.database_url)
            expected = expected_events(db, load)
            waited = await self.wait_webhooks(expected)
            say(f"  webhooks: every expected event {waited}")
            balances = {}
            for name, token in self.tokens.items():
                r = await load.send("GET", "/v1/balance", token)
                balances[name] = int(r.json()["data"]["balance"])
            stats = (await http.get(f"{self.sim_url}/_sim/stats")).json()
            upstream = (await http.get(f"{self.sim_url}/_sim/tasks")).json()["items"]
        self.verify(load, db, expected, balances, stats, upstream)
        if not self.report.ok:  # what a post-mortem needs beside the processes' logs
            (self.workdir / "upstream.json").write_text(json.dumps(upstream, indent=1))
            clients = [{**asdict(o), "spec": o.spec.n} for o in load.outcomes.values()]
            (self.workdir / "clients.json").write_text(json.dumps(clients, indent=1))

    async def progress(self, load: Load, start: float) -> None:
        """A line every 5 s: how far the load has got (a stuck run shows where it stopped)."""
        while True:
            await asyncio.sleep(5)
            outcomes = list(load.outcomes.values())
            self.report.say(
                f"  .. {time.monotonic() - start:4.0f} s: {load.answered} creates answered, "
                f"{sum(1 for o in outcomes if o.task_id and not o.ended_at)} tasks unfinished, "
                f"{sum(1 for o in outcomes if o.ended_at)} ended, {len(self.kills)} kills"
            )

    async def wait_webhooks(self, expected: set[tuple[str, str, str]]) -> str:
        began = time.monotonic()
        while time.monotonic() - began < self.plan.webhook_bound:
            if expected <= set(received_events(self.hooks)):
                return f"in {time.monotonic() - began:.1f} s"
            await asyncio.sleep(0.2)
        return f"NOT within {self.plan.webhook_bound:.0f} s"

    def verify(
        self,
        load: Load,
        db: Database,
        expected: set[tuple[str, str, str]],
        balances: dict[str, int],
        stats: dict[str, Any],
        upstream: list[dict[str, Any]],
    ) -> None:
        say, check = self.report.say, self.report.check
        outcomes = list(load.outcomes.values())
        accepted = {o.task_id: o for o in outcomes if o.task_id}
        refused = Counter(o.refused for o in outcomes if o.refused)
        lost = [o for o in outcomes if o.lost_answers]
        say(
            f"  creates: {len(outcomes)} sent, {len(accepted)} accepted, refused {dict(refused)}; "
            f"{len(lost)} lost an answer and were sent again with their Idempotency-Key "
            f"({sum(1 for o in lost if o.task_id)} accepted on a retry)"
        )
        say(f"  requests sent again: {dict(load.retried.most_common())}")
        ends = Counter(f"{t['status']}/{t['error_code'] or 'ok'}" for t in db.tasks.values())
        say(f"  tasks: {dict(ends.most_common())}")
        say(
            f"  upstream calls: {stats['calls']}; faults injected: {sum(self.faults.values())} "
            f"({dict(self.faults.most_common())})"
        )
        posts = sum(len(h.received) for h in self.hooks.values())
        say(f"  webhooks: {len(expected)} events expected, {posts} posts received")

        check("answers the client did not expect", load.unexpected)
        check(
            "tasks lost (accepted, then not in the database)",
            sorted(accepted.keys() - db.tasks.keys()),
        )
        check(
            "tasks the clients were never told about (made by a create whose answer was lost)",
            sorted(db.tasks.keys() - accepted.keys()),
        )
        check(
            "tasks stuck (not ended within the bound after the load)",
            sorted(f"{i} {t['status']}" for i, t in db.tasks.items() if t["status"] not in TERMINAL)
            + [
                f"{o.task_id} never seen ending by its client"
                for o in accepted.values()
                if o.status not in TERMINAL
            ],
        )
        check(
            "tasks answered 404 by a poll",
            [f"{o.task_id}: {o.not_found} times" for o in accepted.values() if o.not_found],
        )
        markers = Counter(t["marker"] for t in upstream)
        ours = {f"rg-{i}" for i in db.tasks}
        check(
            "tasks created upstream more than once",
            [f"{m}: {n} creates" for m, n in markers.items() if n > 1]
            + (
                [f"max_creates_per_marker {stats['max_creates_per_marker']}"]
                if stats["max_creates_per_marker"] > 1
                else []
            ),
        )
        check(
            "upstream tasks of no reelgate task",
            sorted(str(m) for m in markers.keys() - ours),
        )
        check(
            "successes not created upstream exactly once, or sharing an upstream id",
            [i for i, t in db.tasks.items() if t["status"] == "success" and markers[f"rg-{i}"] != 1]
            + [
                f"{u} x{n}"
                for u, n in Counter(
                    t["upstream_id"] for t in db.tasks.values() if t["upstream_id"]
                ).items()
                if n > 1
            ],
        )
        got = received_events(self.hooks)
        check("webhook events not delivered", sorted(map(str, expected - got.keys())))
        check(
            "webhook events delivered under more than one webhook-id",
            [f"{e}: {sorted(ids)}" for e, ids in got.items() if len(ids) > 1],
        )
        # Events of tasks that had not ended when the database was read are counted as stuck.
        check(
            "webhook events nobody expected",
            sorted(
                str(e)
                for e in got.keys() - expected
                if e[1] not in db.tasks or db.tasks[e[1]]["status"] in TERMINAL
            ),
        )
        figures, bad = ledger_problems(db, self.grants, balances)
        say(f"  ledger: {'; '.join(figures)}")
        check("ledger mismatches", bad)


# -- what is checked -------------------------------------------------------------------------------
@dataclass
class Database:
    tasks: dict[str, dict[str, Any]]  # id: row
    ledger: list[dict[str, Any]]
    owners: dict[str, str]  # token id: name


async def read_database(workdir: Path, database_url: str | None) -> Database:
    """The rows the checks need, read directly (not through reelgate)."""
    queries = (
        "SELECT id, owner_id, status, error_code, usage_tokens, upstream_id FROM tasks",
        "SELECT owner_id, task_id, kind, amount FROM ledger",
        "SELECT id, name FROM api_tokens",
    )
    if database_url is None:
        with contextlib.closing(sqlite3.connect(workdir / "reelgate.db")) as conn:
            conn.row_factory = sqlite3.Row
            rows = [[dict(r) for r in conn.execute(q)] for q in queries]
    else:
        conn = await asyncpg.connect(database_url)
        try:
            rows = [[dict(r) for r in await conn.fetch(q)] for q in queries]
        finally:
            await conn.close()
    tasks, ledger, owners = rows
    return Database({t["id"]: t for t in tasks}, ledger, {o["id"]: o["name"] for o in owners})


def event_of(row: dict[str, Any]) -> str:
    if row["status"] == "success":
        return "video.completed"
    return "video.cancelled" if row["error_code"] == "cancelled" else "video.failed"


def expected_events(db: Database, load: Load) -> set[tuple[str, str, str]]:
    """(receiver, task id, event type): every ended task to its token's endpoint, and to the task
    receiver when its create named one."""
    callbacks = {o.task_id for o in load.outcomes.values() if o.task_id and o.spec.callback}
    out = set()
    for task_id, row in db.tasks.items():
        if row["status"] in TERMINAL:
            out.add(("endpoint", task_id, event_of(row)))
            if task_id in callbacks:
                out.add(("task", task_id, event_of(row)))
    return out


def received_events(hooks: dict[str, Receiver]) -> dict[tuple[str, str, str], set[str]]:
    """Each event received, with the ``webhook-id``s it came under."""
    events: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for name, hook in hooks.items():
        for got in list(hook.received):
            try:
                body = got.json
            except ValueError:  # cut off by a kill of its sender: retried, as for any receiver
                continue
            events[(name, body["data"]["task_id"], body["type"])].add(got.headers["webhook-id"])
    return events


def cost(row: dict[str, Any]) -> int:
    """A task's final cost, from README "Prices and quota": a success pays its upstream usage
    tokens x the price per million, rounded up; every other end costs nothing."""
    if row["status"] != "success" or row["usage_tokens"] is None:
        return 0
    return -(-int(row["usage_tokens"]) * PRICE // 1_000_000)


def ledger_problems(
    db: Database, grants: dict[str, int], balances: dict[str, int]
) -> tuple[list[str], list[str]]:
    """(figures per token, what is wrong): balance == sum of the ledger == grants - the final cost
    of the token's tasks, and each task pre-charged once and, once ended, closed once."""
    figures, bad = [], []
    by_task: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for entry in db.ledger:
        by_task[entry["task_id"]].append(entry)
    for task_id in by_task.keys() - db.tasks.keys() - {None}:
        bad.append(f"ledger entries of task {task_id}, which does not exist")
    for owner_id, name in db.owners.items():
        if name not in grants:
            continue
        tasks = {i: t for i, t in db.tasks.items() if t["owner_id"] == owner_id}
        entries = [e for e in db.ledger if e["owner_id"] == owner_id]
        granted = sum(int(e["amount"]) for e in entries if e["kind"] in ("grant", "adjust"))
        spent = sum(cost(t) for t in tasks.values())
        total = sum(int(e["amount"]) for e in entries)
        for task_id, task in tasks.items():
            kinds = Counter(e["kind"] for e in by_task[task_id])
            closing = kinds["settle"] + kinds["refund"]
            ended = task["status"] in TERMINAL
            right = "settle" if task["status"] == "success" else "refund"
            if kinds["precharge"] != 1 or closing != ended or (ended and kinds[right] != 1):
                bad.append(f"{name} task {task_id} ({task['status']}): entries {dict(kinds)}")
            elif ended and (held := sum(int(e["amount"]) for e in by_task[task_id])) != -cost(task):
                bad.append(f"{name} task {task_id}: charged {-held}, final cost {cost(task)}")
        if granted != grants[name]:
            bad.append(f"{name}: granted {granted}, the run granted {grants[name]}")
        if not balances[name] == total == granted - spent:
            bad.append(
                f"{name}: balance {balances[name]}, ledger sum {total}, grants - cost "
                f"{granted - spent}"
            )
        figures.append(
            f"{name} {balances[name]} = {granted} granted - {spent} for {len(tasks)} tasks"
        )
    return figures, bad


# -- entry points ----------------------------------------------------------------------------------
def run_chaos(plan: Plan, workdir: Path) -> Report:
    """One run of ``plan`` in ``workdir`` (PostgreSQL: a fresh database on tests/pg.py's server,
    dropped afterwards; unreachable, it skips or, under CI, fails as tests/pg.py does)."""
    if plan.db == "sqlite":
        return Run(plan, workdir).execute()
    database = asyncio.run(_pg_database())
    try:
        return Run(plan, workdir, pg_url(database)).execute()
    finally:
        asyncio.run(_drop(database))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one, printed")
    parser.add_argument("--keep", action="store_true", help="keep the logs of a passing run")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    plan = draw_plan(args.db, args.tasks, args.kills, seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"reelgate-chaos-{args.db}-"))
    try:
        report = run_chaos(plan, workdir)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        sys.exit(f"chaos: {exc.msg}")
    if report.ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
