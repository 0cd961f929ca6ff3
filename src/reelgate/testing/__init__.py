"""Test doubles shipped with reelgate: wire-level simulators of the upstreams.

Usable in your own tests: ``ArkSimulator`` speaks Ark's video-task API over real HTTP.
"""

from reelgate.testing.ark_simulator import ArkSimulator, SimulatorHandle, serve_in_thread

__all__ = ["ArkSimulator", "SimulatorHandle", "serve_in_thread"]
