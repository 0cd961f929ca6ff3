"""Test doubles shipped with reelgate, usable in your own tests.

- Wire-level simulators over real HTTP: ``ArkSimulator`` (Ark's video-task API) and
  ``S3Simulator`` (the S3 subset the media store uses), served by ``serve_in_thread``; a new
  simulator subclasses ``UpstreamSimulator`` with only its upstream's API, and any simulator is
  driven through the uniform ``SimulatorControl`` (``LocalControl``, ``HttpControl``).
- ``InMemoryProvider``: a provider with no HTTP, scripted outcomes and faults.
- ``ManualClock``: a clock that moves only when told, for every injected ``clock``.
- The provider contract suite: ``reelgate.testing.contract`` (needs pytest), run against
  ``ContractTarget``s (reelgate's own in ``reelgate.testing.targets``); ``simulated(Sim)``
  is the ``start`` of a target whose upstream is a simulator on the shared base.
"""

from reelgate.testing.ark_simulator import ArkSimulator
from reelgate.testing.clock import ManualClock
from reelgate.testing.memory import InMemoryProvider, memory_model
from reelgate.testing.s3_simulator import S3Handle, S3Simulator, serve_s3_in_thread
from reelgate.testing.simulator import (
    Fault,
    FaultKind,
    HttpControl,
    LocalControl,
    Outcome,
    SampleMedia,
    SimulatorControl,
    SimulatorHandle,
    UpstreamCounts,
    UpstreamSimulator,
    serve_in_thread,
)
from reelgate.testing.target import ContractTarget, Features, StartedUpstream, Timings, simulated

__all__ = [
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
