"""Every declared provider against the shipped contract suite (the built-in ones: Ark on the
Ark simulator and the sandbox; an installed plug-in's too), and the shipped
``InMemoryProvider``."""

from __future__ import annotations

from reelgate.testing.contract import *  # noqa: F403 - the suite's test_* functions
from reelgate.testing.contract import contract_targets
from reelgate.testing.targets import MEMORY, declared_targets

contract_target = contract_targets(*declared_targets(), MEMORY)
