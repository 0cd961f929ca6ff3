"""Tests that could open a connection off the machine run in a network namespace with only
loopback up (``unshare --net``, as ``bench/fuzz.py`` runs the fuzzer): nothing they do can leave it.

``@loopback_only`` on a test function: inside such a namespace the test runs as written; outside,
its module is run once more by pytest inside a fresh namespace, and each decorated test answers
with the verdict its run got there (failures carry the inner report). Inside, loopback also holds
``PUBLIC_ADDRESS``, a globally routable address, so a test can serve "the public internet" there.
Without ``unshare`` (or the right to use it) the tests are skipped with a message, except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import functools
import inspect
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
# A public unicast address (APNIC's), put on loopback inside the namespace.
PUBLIC_ADDRESS = "1.2.3.4"

F = TypeVar("F", bound=Callable[..., Any])
_runs: dict[str, dict[str, tuple[str, str]]] = {}


def isolated() -> bool:
    """True inside a network namespace whose only interface is loopback."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def loopback_only(test: F) -> F:
    """Run ``test`` inside a loopback-only network namespace (see the module docstring)."""
    if isolated():
        return test
    module = sys.modules[test.__module__].__file__
    assert module is not None

    if inspect.iscoroutinefunction(test):

        @functools.wraps(test)
        async def outside_async(*_args: Any, **_kwargs: Any) -> None:
            _verdict(module, test.__name__)

        wrapper: Any = outside_async
    else:

        @functools.wraps(test)
        def outside(*_args: Any, **_kwargs: Any) -> None:
            _verdict(module, test.__name__)

        wrapper = outside
    # Outside, the test takes no fixtures (they would be set up here, off the namespace): only
    # the arguments its parametrize marks give, so that each variant is still collected.
    given = {
        name.strip()
        for mark in getattr(test, "pytestmark", [])
        if mark.name == "parametrize"
        for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
    }
    signature = inspect.signature(test)
    wrapper.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name in given]
    )
    return wrapper  # type: ignore[no-any-return]


def _verdict(module: str, name: str) -> None:
    if module not in _runs:
        _runs[module] = _run_inside(module)
    results = {k: v for k, v in _runs[module].items() if k == name or k.startswith(f"{name}[")}
    if not results:
        pytest.fail(f"{name} did not run inside the network namespace")
    for outcome, text in results.values():
        if outcome == "failed":
            pytest.fail(f"inside the network namespace:\n{text}", pytrace=False)
    if all(outcome == "skipped" for outcome, _ in results.values()):
        pytest.skip(next(iter(results.values()))[1])


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"needs a loopback-only network namespace under CI: {why}")
    pytest.skip(f"needs a loopback-only network namespace (`unshare --net`): {why}")


def _run_inside(module: str) -> dict[str, tuple[str, str]]:
    """Run pytest on ``module`` in a fresh namespace: test name → (outcome, text)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        _unavailable("`unshare` (util-linux) is not installed")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        inner = [
            sys.executable,
            "-m",
            "pytest",
            module,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ]
        up = f"ip link set lo up && ip addr add {PUBLIC_ADDRESS}/32 dev lo"
        script = f"{up} && exec {shlex.join(inner)}"
        done = subprocess.run(
            [unshare, *user, "--net", "sh", "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if not report.exists():
            _unavailable(f"the namespace could not be made: {done.stderr.strip()[-500:]}")
        return _outcomes(report, done.stdout)


def _outcomes(report: Path, output: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    # (Our own pytest's report, written a moment ago: not untrusted input.)
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        name = case.get("name", "")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            found[name] = ("failed", (bad.text or bad.get("message", "")) + "\n" + output[-4000:])
        elif skipped is not None:
            found[name] = ("skipped", skipped.get("message", "skipped inside"))
        else:
            found[name] = ("passed", "")
    return found
