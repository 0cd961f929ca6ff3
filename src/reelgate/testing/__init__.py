"""Test doubles shipped with reelgate: wire-level simulators of the upstreams.

Usable in your own tests: ``ArkSimulator`` speaks Ark's video-task API over real HTTP.
"""

from reelgate.testing.ark_server import SimulatorHandle, serve_in_thread
from reelgate.testing.ark_simulator import ArkSimulator

__all__ = ["ArkSimulator", "SimulatorHandle", "serve_in_thread"]
