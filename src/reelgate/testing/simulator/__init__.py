"""The shared simulator base: fault kinds and scripted outcomes, the ``UpstreamSimulator`` a
simulator subclasses with only its upstream's API, serving in a thread, and the uniform control
handle (``SimulatorControl``) tests drive any simulator with."""

from reelgate.testing.simulator.base import UpstreamSimulator
from reelgate.testing.simulator.control import (
    HttpControl,
    LocalControl,
    SimulatorControl,
    UpstreamCounts,
)
from reelgate.testing.simulator.kinds import Fault, FaultKind, Outcome
from reelgate.testing.simulator.media import SampleMedia
from reelgate.testing.simulator.server import (
    SimulatorHandle,
    run_foreground,
    serve_in_thread,
    start_server,
)

__all__ = [
    "Fault",
    "FaultKind",
    "HttpControl",
    "LocalControl",
    "Outcome",
    "SampleMedia",
    "SimulatorControl",
    "SimulatorHandle",
    "UpstreamCounts",
    "UpstreamSimulator",
    "run_foreground",
    "serve_in_thread",
    "start_server",
]
