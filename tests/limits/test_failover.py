"""Redis unreachable: fail open (per-process limits) or closed (503), logged once per outage and
counted, never a crash; and back to Redis by itself when it answers again. Redis is cut off
through a TCP proxy the test controls (the machine's Redis keeps serving other tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bastion.errors import BastionError
from bastion.limits.failover import FailoverStore, LimiterUnavailable
from bastion.limits.metrics import FALLBACK_ADMISSIONS, REDIS_FAILURES
from bastion.limits.plan import Outcome
from bastion.limits.redis_store import RedisStore
from bastion.store.channel import RedisChannel
from tests.limits.conftest import FakeClock
from tests.limits.helpers import admission, policy_for, principal
from tests.support.gateway import free_port

pytestmark = pytest.mark.redis


class RedisProxy:
    """A TCP forwarder to the real Redis that can be cut (every connection dropped, no new ones)."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.port = port
        self.target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None


@pytest.fixture
async def proxy() -> AsyncIterator[RedisProxy]:
    proxy = RedisProxy(free_port())
    await proxy.start()
    try:
        yield proxy
    finally:
        if proxy._server is not None:
            await proxy.cut()


async def _failover(url: str, mode: Literal["open", "closed"], clock: FakeClock) -> tuple[FailoverStore, RedisChannel]:
    channel = RedisChannel.from_url(url, timeout_s=0.5)
    store = FailoverStore(RedisStore(channel), mode, retry_s=1.0, clock=clock)
    await store.start()
    return store, channel


async def _close(store: FailoverStore, channel: RedisChannel) -> None:
    await store.stop()
    await channel.aclose()


async def test_fail_open_falls_back_to_a_per_process_limiter(clock: FakeClock, redis_prefix: str) -> None:
    store, channel = await _failover(f"redis://127.0.0.1:{free_port()}/0", "open", clock)  # nobody listens
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 2}))
    failures = REDIS_FAILURES._value.get()
    fallbacks = FALLBACK_ADMISSIONS.labels(mode="open")._value.get()
    try:
        with capture_logs() as logs:
            outcomes = [(await store.admit(admission(policy))).outcome for _ in range(3)]
        # The fallback is a real limiter: 2 per minute still hold in this process.
        assert outcomes == [Outcome.ADMITTED, Outcome.ADMITTED, Outcome.REQUESTS]
        assert store.in_outage
        assert [entry["event"] for entry in logs].count("limits_redis_unreachable") == 1  # once per outage
        assert REDIS_FAILURES._value.get() == failures + 1  # Redis is not retried before retry_s
        assert FALLBACK_ADMISSIONS.labels(mode="open")._value.get() == fallbacks + 3
    finally:
        await _close(store, channel)


async def test_fail_closed_refuses_with_503(clock: FakeClock, redis_prefix: str) -> None:
    store, channel = await _failover(f"redis://127.0.0.1:{free_port()}/0", "closed", clock)
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 2}))
    try:
        with pytest.raises(LimiterUnavailable) as caught:
            await store.admit(admission(policy))
        error: BastionError = caught.value
        assert error.status == 503 and error.code == "limiter_unavailable"
        assert error.headers["retry-after"] == "1"
        assert "unreachable" in error.message
    finally:
        await _close(store, channel)


async def test_an_outage_and_the_recovery(proxy: RedisProxy, clock: FakeClock, redis_prefix: str, redis: Redis) -> None:
    store, channel = await _failover(proxy.url, "open", clock)
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 100}))
    try:
        first = await store.admit(admission(policy))
        assert first.outcome is Outcome.ADMITTED and first.store is store.primary
        await proxy.cut()
        with capture_logs() as logs:
            during = await store.admit(admission(policy))
            assert during.outcome is Outcome.ADMITTED and during.store is store.fallback
            # Within retry_s, Redis is not even tried: no connect timeout on every request.
            assert (await store.admit(admission(policy))).store is store.fallback
            await proxy.start()  # Redis reachable again
            assert (await store.admit(admission(policy))).store is store.fallback
            clock.advance(1.0)
            after = await store.admit(admission(policy))
        assert after.store is store.primary and not store.in_outage
        events = [entry["event"] for entry in logs]
        assert events.count("limits_redis_unreachable") == 1 and events.count("limits_redis_recovered") == 1
        # Redis's log holds the requests admitted through Redis: the first and the last.
        assert await redis.zcard(policy.request_rules[0].requests_key) == 2
    finally:
        await _close(store, channel)


async def test_settlements_wait_for_redis_to_come_back(
    proxy: RedisProxy, clock: FakeClock, redis_prefix: str, redis: Redis
) -> None:
    store, channel = await _failover(proxy.url, "open", clock)
    policy = policy_for(redis_prefix, principal(key_settings={"daily_usd": 1.0}))
    try:
        request = admission(policy, estimate=100_000)
        needs = await store.admit(request)
        assert needs.outcome is Outcome.NEEDS_SEED and needs.store is not None
        await needs.store.seed([(request.charges[0], 0)])
        assert (await store.admit(request)).outcome is Outcome.ADMITTED
        await proxy.cut()
        store.primary.settle(request, 0, 40_000)
        assert not await store.primary.settler.drain(0.3)  # queued while Redis is unreachable
        await proxy.start()
        assert await store.primary.settler.drain(10.0)
        key = request.charges[0].key
        assert int(await redis.get(key) or 0) == 40_000
        assert int(await redis.get(key + ":rs") or 0) == 0
    finally:
        await _close(store, channel)
