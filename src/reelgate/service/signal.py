"""A wake-up call for the worker's loops: "there may be work now".

Unlike a bare ``asyncio.Event``, nothing clears it: each loop remembers the generation it had
seen when its round began, so a signal that fires while a loop is busy makes that loop run again
at once instead of being cleared away by another loop.
"""

from __future__ import annotations

import asyncio


class WorkSignal:
    def __init__(self) -> None:
        self.generation = 0
        self._fired = asyncio.Event()

    def set(self) -> None:
        """Wake every loop waiting now; a loop in a round runs another one after it."""
        self.generation += 1
        self._fired.set()
        self._fired = asyncio.Event()

    async def wait(self, since: int) -> None:
        """Return once the signal fired after generation ``since`` (at once if it has)."""
        if self.generation == since:
            await self._fired.wait()
