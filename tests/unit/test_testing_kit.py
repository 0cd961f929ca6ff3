"""The shipped test kit: its public names, ManualClock, and that it needs no pytest at run time
(a provider's declaration builds its contract target in production code)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import reelgate.testing
from reelgate.testing import ManualClock

NAMES = [
    "ArkSimulator",
    "ContractTarget",
    "Fault",
    "FaultKind",
    "Features",
    "HttpControl",
    "InMemoryProvider",
    "LocalControl",
    "ManualClock",
    "Outcome",
    "S3Handle",
    "S3Simulator",
    "SampleMedia",
    "SimulatorControl",
    "SimulatorHandle",
    "StartedUpstream",
    "Timings",
    "UpstreamCounts",
    "UpstreamSimulator",
    "memory_model",
    "serve_in_thread",
    "serve_s3_in_thread",
    "simulated",
]


def test_public_names() -> None:
    assert sorted(reelgate.testing.__all__) == sorted(NAMES)
    assert all(hasattr(reelgate.testing, n) for n in NAMES)


def test_the_kit_imports_without_pytest() -> None:
    code = (
        "import sys; import reelgate.testing, reelgate.testing.targets, "
        "reelgate.testing.simulators; assert 'pytest' not in sys.modules, 'pytest imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(100.0)
    assert clock() == clock.now() == 100.0
    assert clock.advance(2.5) == 102.5
    assert clock() == 102.5
    clock.set(50.0)  # travel, e.g. to test clock skew
    assert clock.now() == 50.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    assert ManualClock()() == ManualClock().now()  # a fixed default start
