"""The insights event stream: ids, Last-Event-ID resume without duplicates or gaps (within the
buffer), keep-alive comments, tenant isolation, fan-out through Redis across processes' brokers,
and what the roll-up job and the alert monitor publish (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bastion.api.insights_stream import KEEPALIVE, frame, last_event_id, sse_frames
from bastion.config.insights_settings import InsightsSettings
from bastion.errors import InvalidRequest
from bastion.insights.alerts import AlertMonitor
from bastion.insights.events import ALERT, ROLLUP, EventBroker, MemoryEvents, StreamEvent
from bastion.insights.events_redis import RedisEvents
from bastion.insights.job import RollupJob
from bastion.jobs.context import JobContext
from bastion.store.db import Database
from tests.insights.synthetic import NOW, insert, records, rollup
from tests.support.redis_server import PrivateRedis, private_redis  # noqa: F401


class Reader:
    """A subscription read in the background, so a test can publish and then look."""

    def __init__(self, broker: EventBroker, tenant_id: str, after: int | None = None) -> None:
        self.events: list[StreamEvent] = []
        self._iterator = broker.subscribe(tenant_id, after)
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for event in self._iterator:
            self.events.append(event)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[StreamEvent]:
        async with asyncio.timeout(timeout_s):
            while len(self.events) < count:
                await asyncio.sleep(0.005)
        return self.events

    async def settled(self) -> list[StreamEvent]:
        """The events so far, after letting pending deliveries through (a round trip of the loop)."""
        for _ in range(20):
            await asyncio.sleep(0)
        return list(self.events)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._iterator.aclose()


def ids(events: list[StreamEvent]) -> list[int]:
    return [e.id for e in events]


async def test_ids_grow_and_a_resumed_subscription_gets_each_missed_event_once() -> None:
    broker = MemoryEvents(replay_events=10)
    first = [await broker.publish("t1", ROLLUP, {"n": n}) for n in range(3)]
    assert ids(first) == sorted(set(ids(first)))  # strictly increasing
    resumed = Reader(broker, "t1", after=first[0].id)
    assert [e.data["n"] for e in await resumed.wait_for(2)] == [1, 2]
    later = await broker.publish("t1", ALERT, {"n": 3})
    events = await resumed.wait_for(3)
    assert ids(events) == [first[1].id, first[2].id, later.id]
    assert await resumed.settled() == events  # nothing twice
    fresh = Reader(broker, "t1")  # no Last-Event-ID: live events only
    await broker.publish("t1", ROLLUP, {"n": 4})
    assert [e.data["n"] for e in await fresh.wait_for(1)] == [4]
    await resumed.close()
    await fresh.close()


async def test_the_replay_buffer_is_bounded_and_tenants_hear_only_their_own() -> None:
    broker = MemoryEvents(replay_events=2)
    published = [await broker.publish("t1", ROLLUP, {"n": n}) for n in range(4)]
    await broker.publish("t2", ROLLUP, {"secret": "t2's"})
    resumed = Reader(broker, "t1", after=published[0].id)
    assert ids(await resumed.wait_for(2)) == ids(published[2:])  # the buffer keeps the last two
    other = Reader(broker, "t2", after=0)
    mine = await broker.publish("t1", ROLLUP, {"n": 4})
    assert ids(await resumed.wait_for(3))[-1] == mine.id
    assert [e.data for e in await other.settled()] == [{"secret": "t2's"}]
    await resumed.close()
    await other.close()


async def test_a_stream_from_before_a_restart_still_hears_new_events() -> None:
    before = await MemoryEvents(clock=lambda: 1_000.0).publish("t1", ROLLUP, {})
    restarted = MemoryEvents(clock=lambda: 1_000.5)  # a new process, half a second later
    reader = Reader(restarted, "t1", after=before.id)
    after = await restarted.publish("t1", ROLLUP, {})
    assert after.id > before.id
    assert ids(await reader.wait_for(1)) == [after.id]
    await reader.close()


async def test_server_sent_events_carry_ids_and_keep_alive_comments() -> None:
    broker = MemoryEvents()
    old = await broker.publish("t1", ROLLUP, {"old": True})
    frames: list[bytes] = []

    async def read() -> None:
        async for chunk in sse_frames(broker.subscribe("t1", after=0), keepalive_s=0.02, max_connection_s=30):
            frames.append(chunk)

    task = asyncio.get_running_loop().create_task(read())
    async with asyncio.timeout(5):
        while KEEPALIVE not in frames:  # idle after the replay: a comment, not an event
            await asyncio.sleep(0.005)
        new = await broker.publish("t1", ALERT, {"alert": "error_rate", "text": "line\nbreak"})
        while frame(new) not in frames:
            await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert frames[0] == frame(old) == b'id: %d\nevent: rollup\ndata: {"old":true}\n\n' % old.id
    assert frame(new).count(b"\n") == 4  # JSON keeps the data on one line
    # The stream ends by itself after max_connection_s.
    async with asyncio.timeout(5):
        ended = [chunk async for chunk in sse_frames(broker.subscribe("t1"), 0.01, 0.05)]
    assert set(ended) <= {KEEPALIVE}


def test_last_event_id_must_be_an_event_id() -> None:
    def request(value: str | None) -> Any:
        return SimpleNamespace(headers={} if value is None else {"last-event-id": value})

    assert last_event_id(request(None)) is None
    assert last_event_id(request("")) is None
    assert last_event_id(request("1796587087134")) == 1796587087134
    for bad in ("-1", "abc", "1e3", "9" * 30):
        with pytest.raises(InvalidRequest):
            last_event_id(request(bad))


@contextlib.asynccontextmanager
async def redis_brokers(server: PrivateRedis, count: int, replay_events: int = 16) -> AsyncIterator[list[RedisEvents]]:
    brokers = [RedisEvents(server.url, "test:insights:", replay_events) for _ in range(count)]
    for broker in brokers:
        await broker.start()
    try:
        yield brokers
    finally:
        for broker in brokers:
            await broker.stop()


async def test_redis_fans_out_across_processes_and_resumes_from_its_buffer(
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    async with redis_brokers(private_redis, 2) as (one, two):
        on_two = Reader(two, "t1")
        on_one = Reader(one, "t1")
        other_tenant = Reader(two, "t2")
        await asyncio.sleep(0)
        a = await one.publish("t1", ROLLUP, {"from": "one"})
        b = await two.publish("t1", ALERT, {"from": "two"})
        assert a is not None and b is not None and b.id > a.id  # one counter per tenant, shared
        assert ids(await on_two.wait_for(2)) == [a.id, b.id]
        assert ids(await on_one.wait_for(2)) == [a.id, b.id]
        assert await other_tenant.settled() == []
        # A browser that saw ``a`` reconnects to the other process: ``b`` once, then live events.
        resumed = Reader(one, "t1", after=a.id)
        assert ids(await resumed.wait_for(1)) == [b.id]
        c = await two.publish("t1", ROLLUP, {"from": "two again"})
        assert c is not None
        assert ids(await resumed.wait_for(2)) == [b.id, c.id]
        assert ids(await resumed.settled()) == [b.id, c.id]
        for reader in (on_one, on_two, other_tenant, resumed):
            await reader.close()


async def test_redis_buffer_is_capped(private_redis: PrivateRedis) -> None:  # noqa: F811
    async with redis_brokers(private_redis, 1, replay_events=3) as (broker,):
        published = [await broker.publish("t1", ROLLUP, {"n": n}) for n in range(5)]
        assert all(p is not None for p in published)
        with private_redis.client() as client:
            assert client.llen("test:insights:events:t1") == 3
        reader = Reader(broker, "t1", after=0)
        assert [e.data["n"] for e in await reader.wait_for(3)] == [2, 3, 4]
        await reader.close()


async def test_a_roll_up_run_announces_each_tenant_s_changed_buckets(database: Database) -> None:
    rows = records(120, seed=3, span_s=3600, base=NOW - timedelta(hours=2))
    await insert(database, rows)
    broker = MemoryEvents()
    readers = {tenant: Reader(broker, tenant) for tenant in ("tenant_a", "tenant_b", "tenant_c")}
    job = RollupJob(rollup(database), events=broker)
    result = await job.run(cast(JobContext, SimpleNamespace(id="job-1")))
    assert result["events"] == 3
    for tenant, reader in readers.items():
        (event,) = await reader.wait_for(1)
        assert event.event == ROLLUP
        buckets = event.data["buckets"]
        assert sum(b["requests"] for b in buckets) == sum(1 for r in rows if r["tenant_id"] == tenant)
        assert {"bucket", "requests", "errors", "blocked", "cost_usd", "latency_ms"} <= set(buckets[0])
        assert "prompt" not in str(event.data).replace("prompt_tokens", "")  # metadata only
        await reader.close()


async def test_alert_changes_are_announced_once(database: Database) -> None:
    rows = records(200, seed=5, span_s=1800, base=NOW - timedelta(minutes=40))
    await insert(database, rows)
    await rollup(database).run()
    settings = InsightsSettings.model_validate({"alerts": {"error_rate_warning": 0.001, "error_rate_critical": 0.99}})
    broker = MemoryEvents()
    reader = Reader(broker, "tenant_a")
    monitor = AlertMonitor(database, settings, clock=lambda: NOW, events=broker)
    firing = (await monitor.refresh())["tenant_a"]
    assert firing[("error_rate", "warning")] and not firing[("error_rate", "critical")]
    events = await reader.wait_for(1)
    assert ("error_rate", "warning", True) in {(e.data["alert"], e.data["severity"], e.data["firing"]) for e in events}
    assert all(e.event == ALERT and e.data["firing"] for e in events)  # the first look: only what fires
    count = len(await reader.settled())
    await monitor.refresh()  # nothing changed: nothing new
    assert len(await reader.settled()) == count
    monitor.settings = InsightsSettings.model_validate({"alerts": {"error_rate_warning": 0.9}})
    await monitor.refresh()  # the warning's threshold rose above the rate: it clears
    cleared = (await reader.settled())[count:]
    assert ("error_rate", "warning", False) in {
        (e.data["alert"], e.data["severity"], e.data["firing"]) for e in cleared
    }
    await reader.close()
