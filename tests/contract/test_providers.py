"""reelgate's own providers against the shipped contract suite: Ark on the Ark simulator, the
sandbox, and the shipped ``InMemoryProvider``."""

from __future__ import annotations

from reelgate.testing.contract import *  # noqa: F403 - the suite's test_* functions
from reelgate.testing.contract import contract_targets
from reelgate.testing.targets import ARK, MEMORY, SANDBOX

contract_target = contract_targets(SANDBOX, ARK, MEMORY)
