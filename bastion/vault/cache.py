"""A small in-process TTL cache for decrypted prompt versions and label lookups.

Decrypted text lives only in this process's memory, never in Redis or on disk, and only for
``vault.cache_ttl_s`` (at most 300 s). The clock is injectable so tests can move time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
Clock = Callable[[], float]


class TTLCache(Generic[V]):
    """Entries expire ``ttl_s`` after they were put; the oldest go first past ``max_entries``."""

    __slots__ = ("_clock", "_entries", "max_entries", "ttl_s")

    def __init__(self, ttl_s: float, *, max_entries: int = 4096, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """``(True, value)`` on a fresh hit (value may be None: a cached "not found")."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if self._clock() >= entry[0]:
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl_s <= 0:
            return  # caching is off
        self._entries[key] = (self._clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
