"""``reelgate simulate NAME`` in a process of its own: it accepts exactly the keys it was given,
and ``HttpControl`` drives it through ``/_sim`` as ``LocalControl`` drives one in process (the
contract checks pass through it)."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from reelgate.core.capabilities import NormalizedRequest
from reelgate.testing import Fault, FaultKind, HttpControl, Outcome, StartedUpstream, Timings
from reelgate.testing import contract_checks as checks
from reelgate.testing.contract_support import Scenario, run_check
from reelgate.testing.targets import ARK
from tests.conftest import free_port

NAME = "ark-process"
KEY = f"contract-key-{NAME}"  # the key the contract suite uses with this target
OTHER = "second-key"
TASKS = "/api/v3/contents/generations/tasks"
PRO = "doubao-seedance-1-0-pro-250528"


@dataclasses.dataclass
class Process:
    url: str
    first_line: str


@pytest.fixture(scope="module")
def simulator() -> Iterator[Process]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "reelgate", "simulate", "ark", "--port", str(port)),
            *("--key", KEY, "--key", OTHER, "--queued-seconds", "10", "--running-seconds", "20"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}"
    try:
        first_line = proc.stdout.readline()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/_sim/stats", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, "the simulator exited"
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.05)
        yield Process(url, first_line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_it_says_where_it_listens_and_which_keys_it_takes(simulator: Process) -> None:
    line = simulator.first_line
    assert f"{simulator.url}/api/v3" in line, line
    assert KEY in line
    assert OTHER in line
    assert "REELGATE_ARK_BASE_URL" in line


@pytest.mark.parametrize(
    ("key", "status"),
    [(KEY, 200), (OTHER, 200), ("sim-key", 401), (KEY[:-1], 401), (KEY + "x", 401)],
)
def test_it_accepts_exactly_the_keys_it_was_given(
    simulator: Process, key: str, status: int
) -> None:
    r = httpx.get(f"{simulator.url}{TASKS}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == status
    if status == 401:  # Ark's own 401 body
        assert r.json()["error"]["code"] == "AuthenticationError"


def test_an_unknown_simulator_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reelgate", "simulate", "nope", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no simulator 'nope' (known: ark" in done.stderr  # and any other declared one


def test_http_control_scripts_faults_time_and_counts(simulator: Process) -> None:
    control = HttpControl(simulator.url)
    auth = {"Authorization": f"Bearer {OTHER}"}
    body = {"model": PRO, "content": [{"type": "text", "text": "a boat"}]}
    before = control.counts()
    control.inject(Fault("create", FaultKind.RATE_LIMITED_BARE))
    refused = httpx.post(f"{simulator.url}{TASKS}", json=body, headers=auth)
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers
    request = NormalizedRequest(PRO, "a boat", (), 5, 1280, 720, {})
    assert control.arrange(Outcome.FAILURE, request) is request  # scripted upstream, not in it
    task_id = httpx.post(f"{simulator.url}{TASKS}", json=body, headers=auth).json()["id"]
    control.advance(31)
    seen = httpx.get(f"{simulator.url}{TASKS}/{task_id}", headers=auth).json()
    assert seen["status"] == "failed"
    after = control.counts()
    assert after.creates == before.creates + 1
    assert after.lookups == (before.lookups or 0) + 1
    for path, spec in (("faults", {"kind": "500"}), ("script", {"outcome": "x"}), ("clock", {})):
        assert httpx.post(f"{simulator.url}/_sim/{path}", json=spec).status_code == 400


@contextlib.contextmanager
def _on_the_process(url: str, key: str, timings: Timings) -> Iterator[StartedUpstream]:
    assert httpx.post(f"{url}/_sim/reset").status_code == 200
    yield StartedUpstream(f"{url}/api/v3", HttpControl(url), key)


@pytest.mark.parametrize(
    ("check", "scenario"),
    [
        ("success", checks.success),
        ("failure", checks.failure),
        ("unknown_status", checks.unknown_status),
        ("batch_size", checks.batch_size),
        ("fault_at_create:reset", lambda r: checks.fault_at_create(r, FaultKind.RESET)),
        ("fault_at_lookup:429", lambda r: checks.fault_at_lookup(r, FaultKind.RATE_LIMITED)),
        ("bad_credentials", checks.bad_credentials),
    ],
)
def test_the_contract_holds_through_http_control(
    simulator: Process, check: str, scenario: Scenario
) -> None:
    target = dataclasses.replace(
        ARK,
        name=NAME,
        start=lambda key, timings: _on_the_process(simulator.url, key, timings),
        timings=Timings(queued_s=10, running_s=20),
    )
    run_check(target, check, scenario)
