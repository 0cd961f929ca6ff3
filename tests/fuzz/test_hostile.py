"""The bounded hostile run of CI: bench/hostile.py's sweep (one value of each hostile family in
every slot of every route) and a few hundred random requests, against a live gateway on SQLite
and on PostgreSQL. Fails on any 5xx but the documented upstream 503s, a hang, an unhandled
error or traceback in the server log, the gateway's exit, or a worker that no longer finishes a
normal task; the output names each failure class with a request that reproduces it. ``make fuzz``
is the large run."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.pg import _drop, _pg_database

CASES = 200  # random requests per database, beside the sweep's
SEED = 1


def run(db: str) -> str:
    # A process of its own: the harness runs the gateway in a network namespace with only
    # loopback (fuzzed URLs are fetched for real), and warnings are errors there as here.
    flags = f"--db {db} --cases {CASES} --seed {SEED}".split()
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bench.hostile", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def check(db: str, output: str) -> None:
    summary = re.search(
        rf"^\[{db}\] (\d+) requests \((\d+) in the sweep, the rest random\) "
        r"over (\d+) of (\d+) routes",
        output,
        re.MULTILINE,
    )
    assert summary is not None, output
    requests, swept, tested, routes = map(int, summary.groups())
    assert requests - swept >= CASES * 0.9, output
    assert swept >= 500, output  # every slot of a kind met each family
    assert tested == routes >= 60, output  # documented and undocumented routes alike
    assert f"hostile passed [{db}]: 0 failure classes" in output, output


def test_a_bounded_hostile_run_on_sqlite() -> None:
    check("sqlite", run("sqlite"))


@pytest.mark.postgres
def test_a_bounded_hostile_run_on_postgresql() -> None:
    asyncio.run(_drop(asyncio.run(_pg_database())))  # skips (or fails under CI) without one
    check("postgres", run("postgres"))
