"""The insights event stream shared by every process through Redis (when ``redis_url`` is set).

Publishing is one Lua script, so id, buffer and broadcast agree: the tenant's id counter grows
(``max(last + 1, now in ms)``, as in memory), the event is appended to the tenant's capped list
(``<prefix>events:<tenant>``, the replay buffer) and published on one pub/sub channel
(``<prefix>events``). Each process holds one subscription and hands the events to its own
subscribers of that tenant. After a lost subscription it reads the buffers of the tenants it
serves, so an event published meanwhile is still delivered (ids make it once only).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bastion.insights.events import Fanout, StreamEvent, Subscription

log = structlog.get_logger("bastion.insights")

_PUBLISH = """
local id = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
local now = tonumber(ARGV[3])
if now > id then id = now end
redis.call('SET', KEYS[1], id)
local message = '{"id":' .. string.format('%d', id) .. ',' .. string.sub(ARGV[1], 2)
redis.call('RPUSH', KEYS[2], message)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('PUBLISH', KEYS[3], message)
return message
"""
_TIMEOUT_S = 2.0


class RedisEvents:
    def __init__(self, url: str, prefix: str, replay_events: int = 256) -> None:
        self.prefix = prefix
        self.replay_events = replay_events
        self.channel = f"{prefix}events"
        # No socket timeout: the subscription waits for messages as long as it takes; calls are
        # bounded with asyncio timeouts instead.
        self.redis = Redis.from_url(url, decode_responses=False, socket_connect_timeout=1.0, health_check_interval=15)
        self._fanout = Fanout()
        self._delivered: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    def _list(self, tenant_id: str) -> str:
        return f"{self.prefix}events:{tenant_id}"

    async def publish(self, tenant_id: str, event: str, data: Mapping[str, Any]) -> StreamEvent | None:
        body = orjson.dumps({"tenant": tenant_id, "event": event, "data": data})
        keys = (f"{self._list(tenant_id)}:id", self._list(tenant_id), self.channel)
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                raw = await self.redis.eval(_PUBLISH, 3, *keys, body, self.replay_events, int(time.time() * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("insights_event_not_published", tenant=tenant_id, event=event, error=repr(exc))
            return None
        return StreamEvent.decode(raw)

    async def _buffer(self, tenant_id: str) -> list[StreamEvent]:
        async with asyncio.timeout(_TIMEOUT_S):
            raw = await self.redis.lrange(self._list(tenant_id), 0, -1)
        return [StreamEvent.decode(item) for item in raw]

    def subscribe(self, tenant_id: str, after: int | None = None) -> Subscription:
        listener = self._fanout.add(tenant_id)

        async def replay() -> list[StreamEvent]:
            try:
                return await self._buffer(tenant_id)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("insights_event_replay_failed", tenant=tenant_id, error=repr(exc))
                return []

        return Subscription(self._fanout, listener, after, replay if after is not None else None)

    def _deliver(self, tenant_id: str, event: StreamEvent) -> None:
        if event.id > self._delivered.get(tenant_id, 0):
            self._delivered[tenant_id] = event.id
        self._fanout.deliver(tenant_id, event)

    async def _catch_up(self) -> None:
        """After a reconnect: what the tenants served here missed while unsubscribed."""
        for tenant_id in self._fanout.tenants():
            seen = self._delivered.get(tenant_id, 0)
            for event in await self._buffer(tenant_id):
                if event.id > seen:
                    self._deliver(tenant_id, event)

    async def _listen(self) -> None:
        backoff = 0.2
        first = True
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    if not first:
                        await self._catch_up()
                    first = False
                    self._subscribed.set()
                    backoff = 0.2
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        value = orjson.loads(message["data"])
                        self._deliver(str(value["tenant"]), StreamEvent.decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: subscribe again after a pause
                log.warning("insights_event_subscription_lost", error=repr(exc), retry_s=backoff)
                self._subscribed.set()  # do not hold start-up for a Redis that is away
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TIMEOUT_S):
                    await self._subscribed.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.redis.aclose()
