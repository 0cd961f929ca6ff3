"""A small LRU cache with per-entry deadlines on an injected monotonic clock."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._size = size
        self._clock = clock
        self._data: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline < self._clock():
            del self._data[key]
            return None
        return value

    def peek(self, key: K) -> tuple[V, float] | None:
        """The entry and its deadline, expired or not; nothing is removed or reordered."""
        return self._data.get(key)

    def put(self, key: K, value: V, ttl: float) -> None:
        if self._size <= 0 or ttl <= 0:
            self._data.pop(key, None)
            return
        self._data[key] = (value, self._clock() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def discard(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
