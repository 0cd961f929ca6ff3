"""Test doubles shipped with reelgate: wire-level simulators of the services it talks to.

Usable in your own tests: ``ArkSimulator`` speaks Ark's video-task API over real HTTP, and
``S3Simulator`` the S3 object API subset the media store uses.
"""

from reelgate.testing.ark_server import SimulatorHandle, serve_in_thread
from reelgate.testing.ark_simulator import ArkSimulator
from reelgate.testing.s3_simulator import S3Handle, S3Simulator, serve_s3_in_thread

__all__ = [
    "ArkSimulator",
    "S3Handle",
    "S3Simulator",
    "SimulatorHandle",
    "serve_in_thread",
    "serve_s3_in_thread",
]
