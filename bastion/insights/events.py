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
from collections.abc import Awaitable, Callable, Mapping
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
    def subscribe(self, tenant_id: str, after: int | None = None) -> Subscription:
        """The tenant's events with an id above ``after`` that are still buffered, then the live
        ones as they come, each once, in id order, until ``aclose``. Listening starts here."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def next_id(last: int, now_s: float) -> int:
    """An id above ``last`` and at least the current time in milliseconds, so ids keep growing
    across restarts of a process that keeps its stream in memory (a browser's ``Last-Event-ID``
    from before the restart then never hides newer events)."""
    return max(last + 1, int(now_s * 1000))


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


class Subscription:
    """One subscriber's events: the replayed ones after ``after``, then the live ones, each id
    once. The listener is registered when the subscription is made, before the replay is read, so
    nothing published in between is lost (an event that arrives both ways is skipped the second
    time). ``aclose`` unregisters it."""

    def __init__(
        self,
        fanout: Fanout,
        listener: _Listener,
        after: int | None,
        replay: Callable[[], Awaitable[list[StreamEvent]]] | None,
    ) -> None:
        self._fanout = fanout
        self._listener = listener
        self._last = after if after is not None else -1
        self._load = replay
        self._replay: deque[StreamEvent] = deque()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._load is not None:
            load, self._load = self._load, None
            self._replay.extend(await load())
        while self._replay:
            event = self._replay.popleft()
            if event.id > self._last:
                self._last = event.id
                return event
        while True:
            event = await self._listener.queue.get()
            if event.id > self._last:
                self._last = event.id
                return event

    async def aclose(self) -> None:
        self._fanout.remove(self._listener)


class MemoryEvents:
    """The stream of one process: a counter and a bounded buffer per tenant."""

    def __init__(self, replay_events: int = 256, clock: Callable[[], float] = time.time) -> None:
        self.replay_events = replay_events
        self.clock = clock
        self._buffers: dict[str, deque[StreamEvent]] = {}
        self._last: dict[str, int] = {}
        self._fanout = Fanout()

    async def publish(self, tenant_id: str, event: str, data: Mapping[str, Any]) -> StreamEvent:
        self._last[tenant_id] = ident = next_id(self._last.get(tenant_id, 0), self.clock())
        item = StreamEvent(ident, event, data)
        self._buffers.setdefault(tenant_id, deque(maxlen=self.replay_events)).append(item)
        self._fanout.deliver(tenant_id, item)
        return item

    def subscribe(self, tenant_id: str, after: int | None = None) -> Subscription:
        listener = self._fanout.add(tenant_id)
        buffered = list(self._buffers.get(tenant_id, ())) if after is not None else []

        async def replay() -> list[StreamEvent]:
            return buffered

        return Subscription(self._fanout, listener, after, replay)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
