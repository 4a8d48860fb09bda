"""Fixtures of the limits and spend tests: a real Redis (keys under a unique prefix per test, deleted
afterwards), an injectable clock, and the storage fixtures (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.support.cluster import gateway_cluster  # noqa: F401  (fixture)
from tests.support.db import *  # noqa: F403  (database, pg_database_url, sqlite_database_url, ...)

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests sharing the machine's Redis never collide."""
    return f"bastion-test:{uuid.uuid4().hex[:12]}:"


@contextlib.asynccontextmanager
async def redis_client(prefix: str) -> AsyncIterator[Redis]:
    """A client on the test Redis; every key under ``prefix`` is deleted afterwards."""
    client = Redis.from_url(REDIS_URL, decode_responses=False, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    async with redis_client(redis_prefix) as client:
        yield client
