"""What a route renders from a task, kept while what it was rendered from is unchanged.

A task is an immutable value: the service hands out the same object until the task changes, so
a body (or a whole answer) rendered from it stays right as long as that object (compared by
identity) and the other inputs of the rendering (estimates, the media links' epoch) are the same.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from reelgate.core.lifecycle import Task

V = TypeVar("V")


class RenderCache(Generic[V]):
    def __init__(self, size: int = 100_000) -> None:
        self._kept: dict[str, tuple[Task, Hashable, V]] = {}
        self._size = size

    def get(self, task: Task, inputs: Hashable) -> V | None:
        """What was rendered from this very ``task`` value with these ``inputs``, if kept."""
        kept = self._kept.get(task.id)
        if kept is not None and kept[0] is task and kept[1] == inputs:
            return kept[2]
        return None

    def put(self, task: Task, inputs: Hashable, value: V) -> V:
        if self._size > 0:
            if task.id not in self._kept and len(self._kept) >= self._size:
                self._kept.pop(next(iter(self._kept)))  # the oldest first
            self._kept[task.id] = (task, inputs, value)
        return value
