"""The insights event stream: what the dashboard hears live (``GET /api/v1/insights/stream``).

An event is metadata only (bucket totals, alert states; never prompt or answer text), belongs to
one tenant, and has an integer id that only grows within the tenant's stream. The last
``insights.stream.replay_events`` events of each tenant are kept, so a client that reconnects with
``Last-Event-ID`` gets what it missed (within that buffer) and nothing twice.

``EventPublisher`` is what the roll-up job and the alert monitor are given; ``EventBroker`` is the
stream the HTTP layer reads. ``MemoryEvents`` serves one process; ``RedisEvents``
(``events_redis.py``) fans out to every process through Redis. The composition root chooses.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

#: A roll-up run changed the tenant's buckets: ``{"buckets": [<timeseries point>, ...]}``.
ROLLUP: Final = "rollup"
#: An alert started or stopped firing: ``{"alert", "severity", "firing", "value"}``.
ALERT: Final = "alert"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    event: str
    data: Mapping[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps({"id": self.id, "event": self.event, "data": self.data})

    @classmethod
    def decode(cls, raw: bytes | str) -> StreamEvent:
        value = orjson.loads(raw)
        return cls(int(value["id"]), str(value["event"]), value["data"])


class EventPublisher(Protocol):
    async def publish(self, tenant_id: str, event: str, data: Mapping[str, Any]) -> StreamEvent | None:
        """Append an event to the tenant's stream (None: it could not be published)."""
        ...


class EventBroker(EventPublisher, Protocol):
    def subscribe(self, tenant_id: str, after: int | None = None) -> AsyncIterator[StreamEvent]:
        """The tenant's events with an id above ``after`` that are still buffered, then the live
        ones as they come, each once, in id order; runs until the caller stops iterating."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def next_id(last: int) -> int:
    """An id above ``last`` and at least the current time in milliseconds, so ids keep growing
    across restarts of a process that keeps its stream in memory (a browser's ``Last-Event-ID``
    from before the restart then never hides newer events)."""
    return max(last + 1, int(time.time() * 1000))


@dataclass(eq=False)  # compared (and hashed) by identity: each subscriber is its own
class _Listener:
    tenant_id: str
    queue: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)


class Fanout:
    """The subscribers of one process, per tenant: events are handed to their queues in order."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_Listener]] = {}

    def add(self, tenant_id: str) -> _Listener:
        listener = _Listener(tenant_id)
        self._listeners.setdefault(tenant_id, set()).add(listener)
        return listener

    def remove(self, listener: _Listener) -> None:
        group = self._listeners.get(listener.tenant_id)
        if group is not None:
            group.discard(listener)
            if not group:
                del self._listeners[listener.tenant_id]

    def deliver(self, tenant_id: str, event: StreamEvent) -> None:
        for listener in self._listeners.get(tenant_id, ()):
            listener.queue.put_nowait(event)

    def tenants(self) -> list[str]:
        return list(self._listeners)


async def merged(listener: _Listener, replay: list[StreamEvent], after: int | None) -> AsyncIterator[StreamEvent]:
    """The replayed events, then the listener's live ones, skipping any id already yielded: the
    listener was registered before the replay was read, so an event may arrive both ways."""
    last = after if after is not None else -1
    for event in replay:
        if event.id > last:
            last = event.id
            yield event
    while True:
        event = await listener.queue.get()
        if event.id > last:
            last = event.id
            yield event


class MemoryEvents:
    """The stream of one process: a counter and a bounded buffer per tenant."""

    def __init__(self, replay_events: int = 256) -> None:
        self.replay_events = replay_events
        self._buffers: dict[str, deque[StreamEvent]] = {}
        self._last: dict[str, int] = {}
        self._fanout = Fanout()

    async def publish(self, tenant_id: str, event: str, data: Mapping[str, Any]) -> StreamEvent:
        self._last[tenant_id] = ident = next_id(self._last.get(tenant_id, 0))
        item = StreamEvent(ident, event, data)
        self._buffers.setdefault(tenant_id, deque(maxlen=self.replay_events)).append(item)
        self._fanout.deliver(tenant_id, item)
        return item

    async def subscribe(self, tenant_id: str, after: int | None = None) -> AsyncIterator[StreamEvent]:
        listener = self._fanout.add(tenant_id)
        try:
            replay = list(self._buffers.get(tenant_id, ())) if after is not None else []
            async for event in merged(listener, replay, after):
                yield event
        finally:
            self._fanout.remove(listener)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
