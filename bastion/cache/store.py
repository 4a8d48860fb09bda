"""Where cached answers live: process memory (bounded LRU with TTL, the embedded default) or Redis
(shared by every process, when ``redis_url`` is set). Values are opaque bytes; keys are the hex
digests of ``keys.py`` (the tenant is inside the digest, so one key space serves every tenant
without any tenant being able to name another's entry)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from bastion.store.channel import RedisChannel

Clock = Callable[[], float]


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """A bounded LRU of (expiry, value): at most ``max_entries`` answers and ``max_bytes`` of them."""

    name = "memory"

    def __init__(self, max_entries: int, max_bytes: int, *, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self.clock() + ttl_s, value)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, key: str) -> None:
        if key in self._entries:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def aclose(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    """``GET`` / ``SET .. PX`` on the pipelined channel; every call bounded by ``timeout_s``."""

    name = "redis"

    def __init__(self, channel: RedisChannel, prefix: str, timeout_s: float) -> None:
        self.channel = channel
        self.prefix = prefix
        self.timeout_s = timeout_s

    @classmethod
    def from_url(cls, url: str, prefix: str, timeout_s: float) -> RedisStore:
        return cls(RedisChannel.from_url(url, timeout_s=timeout_s), prefix, timeout_s)

    async def get(self, key: str) -> bytes | None:
        reply = await asyncio.wait_for(self.channel.call("GET", self.prefix + key), self.timeout_s)
        return reply if isinstance(reply, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ttl_ms = max(1, int(ttl_s * 1000))
        await asyncio.wait_for(self.channel.call("SET", self.prefix + key, value, "PX", ttl_ms), self.timeout_s)

    async def delete(self, key: str) -> None:
        await asyncio.wait_for(self.channel.call("DEL", self.prefix + key), self.timeout_s)

    async def aclose(self) -> None:
        await self.channel.aclose()
