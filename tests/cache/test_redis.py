"""The Redis store (``BASTION_TEST_REDIS``; keys under a prefix of the test's own, deleted after):
answers are shared by every gateway on the same Redis, expire with their TTL, and a Redis that
does not answer turns lookups into misses, never into failed requests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bastion.store.db import Database
from tests.cache.support import MODEL, REDIS_URL, UPSTREAM, CacheEnv, cache_settings, fake_embedder, metric
from tests.guard_stages.support import GuardFake
from tests.support.gateway import free_port
from tests.support.harness import running_gateway

pytestmark = pytest.mark.redis

BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Hello Redis"}], "temperature": 0}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"bastion-test:cache:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(REDIS_URL, socket_timeout=2.0)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_answers_are_shared_through_redis_and_expire(
    database: Database, database_url: str, tmp_path: Path, guard_fake: GuardFake, redis_prefix: str
) -> None:
    settings = cache_settings(
        database_url,
        tmp_path / "data",
        guard_fake,
        redis_url=REDIS_URL,
        cache={"backend": "redis", "redis_prefix": redis_prefix, "ttl_s": 120},
        ledger={"enabled": False},  # three gateways on one SQLite file: the ledger is not under test
    )
    async with (
        running_gateway(settings, before_start=fake_embedder) as one,
        running_gateway(settings, before_start=fake_embedder) as two,
    ):
        env_one, env_two = CacheEnv(one.gateway, one.client, database), CacheEnv(two.gateway, two.client, database)
        caller = await env_one.tenant()
        first = await env_one.chat(caller, BODY)
        assert first.status_code == 200, first.text
        assert first.headers["x-bastion-cache"] == "miss"
        # Another gateway process on the same Redis answers from the stored entry.
        second = await env_two.chat(caller, BODY)
        assert second.headers["x-bastion-cache"] == "hit"
        assert second.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        assert guard_fake.attempts(UPSTREAM) == 1

    client = Redis.from_url(REDIS_URL, socket_timeout=2.0)
    try:
        [key] = [key async for key in client.scan_iter(match=redis_prefix + "*")]
        assert 0 < await client.pttl(key) <= 120_000
        await client.delete(key)  # expired (or evicted): the next request is a miss again
    finally:
        await client.aclose()
    async with running_gateway(settings, before_start=fake_embedder) as three:
        env = CacheEnv(three.gateway, three.client, database)
        assert (await env.chat(caller, BODY)).headers["x-bastion-cache"] == "miss"
    assert guard_fake.attempts(UPSTREAM) == 2


async def test_an_unreachable_redis_is_a_miss_not_an_error(
    database: Database, database_url: str, tmp_path: Path, guard_fake: GuardFake
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/6"
    settings = cache_settings(
        database_url, tmp_path / "data", guard_fake, cache={"backend": "redis", "redis_timeout_s": 0.2}
    )
    settings.redis_url = dead
    settings.auth.epoch_key = "unused"
    async with running_gateway(settings, before_start=fake_embedder) as running:
        env = CacheEnv(running.gateway, running.client, database)
        caller = await env.tenant()
        for _ in range(2):
            response = await env.chat(caller, BODY)
            assert response.status_code == 200, response.text
            assert response.headers["x-bastion-cache"] == "miss"
        metrics = await env.metrics(caller)
    assert metric(metrics, "bastion_cache_errors_total", store="redis", operation="get") >= 2
    assert guard_fake.attempts(UPSTREAM) == 2
