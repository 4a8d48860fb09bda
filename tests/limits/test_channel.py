"""The limiter's pipelined Redis channel and the Redis store's script handling, on the real Redis:
batching, error replies, timeouts and reconnection, NOSCRIPT recovery, and the release of an
admission whose caller went away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bastion.limits import redis_store as redis_store_module
from bastion.limits.plan import Outcome
from bastion.limits.redis_store import RedisStore
from bastion.limits.scripts import ADMIT, sha1
from bastion.store.channel import RedisChannel
from tests.limits.conftest import REDIS_URL
from tests.limits.helpers import admission, policy_for, principal
from tests.support.gateway import free_port

pytestmark = pytest.mark.redis


@pytest.fixture
async def channel() -> AsyncIterator[RedisChannel]:
    channel = RedisChannel.from_url(REDIS_URL)
    try:
        yield channel
    finally:
        await channel.aclose()


async def test_commands_of_one_loop_iteration_share_one_write(channel: RedisChannel, redis_prefix: str) -> None:
    assert await channel.call("PING") == b"PONG"
    before = channel.batches
    replies = await channel.call_many([("INCR", redis_prefix + "n") for _ in range(200)])
    assert replies == list(range(1, 201))
    assert channel.batches == before + 1
    await channel.call("DEL", redis_prefix + "n")


async def test_an_error_reply_fails_only_its_call(channel: RedisChannel, redis_prefix: str) -> None:
    replies = await channel.call_many(
        [("SET", redis_prefix + "s", "x"), ("INCR", redis_prefix + "s"), ("GET", redis_prefix + "s")]
    )
    assert replies[0] == b"OK" and isinstance(replies[1], ResponseError) and replies[2] == b"x"
    with pytest.raises(ResponseError):
        await channel.call("NOT-A-COMMAND")
    assert await channel.call("DEL", redis_prefix + "s") == 1


async def test_a_silent_server_times_out_and_the_channel_reconnects() -> None:
    """A server that accepts and never answers: the call fails after the timeout, not never."""
    silent: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    port = free_port()
    server = await asyncio.start_server(accept, "127.0.0.1", port)
    channel = RedisChannel("127.0.0.1", port, timeout_s=0.3)
    try:
        with pytest.raises(TimeoutError):
            await channel.call("PING")
        server.close()
        for writer in silent:
            writer.close()
        await server.wait_closed()
        with pytest.raises(ConnectionError):  # nothing listens now: refused, quickly
            await channel.call("PING")
    finally:
        await channel.aclose()


def test_urls() -> None:
    plain = RedisChannel.from_url("redis://user:p%40ss@redis.example:6380/3")
    assert (plain.host, plain.port, plain.db, plain.username, plain.password, plain.tls) == (
        "redis.example",
        6380,
        3,
        "user",
        "p@ss",
        None,
    )
    assert RedisChannel.from_url("rediss://redis.example").tls is not None
    unix = RedisChannel.from_url("unix:///run/redis.sock?db=2")
    assert (unix.path, unix.db) == ("/run/redis.sock", 2)
    with pytest.raises(ValueError):
        RedisChannel.from_url("http://redis.example")


async def test_a_wrong_password_is_a_connection_error() -> None:
    channel = RedisChannel.from_url(REDIS_URL.replace("redis://", "redis://nobody:wrong@"))
    try:
        with pytest.raises(ConnectionError):
            await channel.call("PING")
    finally:
        await channel.aclose()


async def test_noscript_loads_the_script_and_retries(
    channel: RedisChannel, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A variant of the admission script Redis has never seen (as after a restart or SCRIPT FLUSH).
    variant = ADMIT + f"\n-- {redis_prefix}\n"
    monkeypatch.setattr(redis_store_module, "ADMIT", variant)
    monkeypatch.setattr(redis_store_module, "ADMIT_SHA", sha1(variant))
    assert await channel.call("SCRIPT", "EXISTS", sha1(variant)) == [0]
    store = RedisStore(channel)
    policy = policy_for(redis_prefix, principal(key_settings={"rpm": 5}))
    assert (await store.admit(admission(policy))).outcome is Outcome.ADMITTED
    assert await channel.call("SCRIPT", "EXISTS", sha1(variant)) == [1]
    assert (await store.admit(admission(policy))).outcome is Outcome.ADMITTED


async def test_an_admission_whose_caller_went_away_is_released(
    channel: RedisChannel, redis_prefix: str, redis: Redis
) -> None:
    store = RedisStore(channel)
    await store.start()
    try:
        policy = policy_for(redis_prefix, principal(key_settings={"daily_usd": 1.0, "rpm": 5}))
        first = admission(policy, estimate=250_000)
        await store.seed([(first.charges[0], 0)])
        task = asyncio.ensure_future(store.admit(first))
        await asyncio.sleep(0)  # submitted, not yet answered
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The script did run (the request is in the log); the settler gives the reservation back.
        key = first.charges[0].key
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            logged = await redis.zcard(policy.request_rules[0].requests_key)
            reserved = int(await redis.get(key + ":rs") or 0)
            if logged == 1 and reserved == 0:
                break
            await asyncio.sleep(0.02)
        assert (logged, reserved) == (1, 0)
        assert int(await redis.get(key) or 0) == 0
    finally:
        await store.stop()


async def test_a_server_that_does_not_speak_resp_fails_the_call() -> None:
    async def babble(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    port = free_port()
    server = await asyncio.start_server(babble, "127.0.0.1", port)
    channel = RedisChannel("127.0.0.1", port, timeout_s=5.0)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionError):
            await channel.call("PING")
        assert asyncio.get_running_loop().time() - started < 2.0  # failed on the bytes, not the timeout
    finally:
        await channel.aclose()
        server.close()
        await server.wait_closed()


async def test_settlements_survive_noscript(
    channel: RedisChannel, redis_prefix: str, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.limits.scripts import SETTLE

    variant = SETTLE + f"\n-- {redis_prefix}\n"
    monkeypatch.setattr(redis_store_module, "SETTLE", variant)
    monkeypatch.setattr(redis_store_module, "SETTLE_SHA", sha1(variant))
    store = RedisStore(channel)
    await store.start()
    try:
        policy = policy_for(redis_prefix, principal(key_settings={"daily_usd": 1.0}))
        request = admission(policy, estimate=200_000)
        await store.seed([(request.charges[0], 0)])
        assert (await store.admit(request)).outcome is Outcome.ADMITTED
        store.settle(request, 0, 150_000)
        assert await store.settler.drain(5.0)
        key = request.charges[0].key
        counted, reserved = await redis.get(key), await redis.get(key + ":rs")
        assert counted is not None
        assert (int(counted), int(reserved or 0)) == (150_000, 0)
    finally:
        await store.stop()
