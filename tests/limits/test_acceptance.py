"""The issue's acceptance tests, on real ``bastion serve`` processes:

* a key limited to 100 requests per minute gets exactly 100 of 500 concurrent requests through
  (the others 429 with Retry-After), spread over two processes sharing Redis and PostgreSQL, and
  on one process with the in-memory store;
* a $1.00 daily budget under 200 concurrent requests of $0.03 each admits exactly 33 ($0.99), and
  the spend recorded (limiter counter and ledger) is at most $1.00 plus one request.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from tests.limits.conftest import REDIS_URL
from tests.limits.gateway_load import (
    FREE_BODY,
    PRICED_BODY,
    PRICED_REQUEST_USD,
    fire,
    ledger_spend,
    limits_config,
)
from tests.support.cluster import ClusterFactory
from tests.support.fake_upstream import FakeUpstream

Storage = tuple[int, str | None, str | None]


@pytest.fixture(
    params=[
        pytest.param("two processes, Redis + PostgreSQL", marks=pytest.mark.postgres),
        "one process, memory + SQLite",
    ]
)
def storage(request: pytest.FixtureRequest) -> Storage:
    """(processes, database URL, Redis URL) of the deployment under test."""
    if request.param.startswith("two"):
        return 2, request.getfixturevalue("pg_database_url"), REDIS_URL
    return 1, None, None


async def test_exactly_100_of_500_concurrent_requests_pass_a_100_rpm_key(
    storage: Storage,
    gateway_cluster: ClusterFactory,
    fake: FakeUpstream,
    redis: Redis,
    redis_prefix: str,
) -> None:
    processes, database_url, redis_url = storage
    config = limits_config(fake.openai_base, redis_prefix=redis_prefix)
    cluster = gateway_cluster(config, processes=processes, database_url=database_url, redis_url=redis_url)
    key = cluster.create_key("t1", rpm=100)

    replies = await fire(cluster.urls, key["key"], 500, FREE_BODY)

    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 100, (sorted(set(statuses)), cluster.log_tails())
    assert statuses.count(429) == 400
    assert {reply.url for reply in replies} == set(cluster.urls)  # the load really was spread
    for reply in replies:
        if reply.status == 200:
            assert reply.headers["x-ratelimit-limit-requests"] == "100"
            assert 0 <= int(reply.headers["x-ratelimit-remaining-requests"]) < 100
        else:
            assert 1 <= int(reply.headers["retry-after"]) <= 60
            assert reply.headers["x-ratelimit-remaining-requests"] == "0"
            error = reply.body["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
            assert f"key {key['prefix']}" in error["message"] and "100" in error["message"]
    # 100 distinct remaining values: each success saw its own place in the window.
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in replies if r.status == 200)
    assert remaining == list(range(100))


async def test_a_one_dollar_budget_under_200_concurrent_requests_admits_exactly_what_it_allows(
    storage: Storage,
    gateway_cluster: ClusterFactory,
    fake: FakeUpstream,
    redis: Redis,
    redis_prefix: str,
) -> None:
    processes, database_url, redis_url = storage
    config = limits_config(fake.openai_base, redis_prefix=redis_prefix)
    cluster = gateway_cluster(config, processes=processes, database_url=database_url, redis_url=redis_url)
    key = cluster.create_key("t1", daily_usd=1.0)
    day = datetime.now(UTC).strftime("%Y%m%d")

    replies = await fire(cluster.urls, key["key"], 200, PRICED_BODY)

    statuses = [reply.status for reply in replies]
    allowed = int(1.0 // PRICED_REQUEST_USD + 1e-9)  # 33: a 34th would make $1.02
    assert statuses.count(200) == allowed, (sorted(set(statuses)), cluster.log_tails())
    assert statuses.count(402) == 200 - allowed
    refusal = next(reply for reply in replies if reply.status == 402)
    assert refusal.body["error"]["type"] == "budget_exceeded" and refusal.body["error"]["code"] == "budget_exceeded"
    assert f"Daily budget of key {key['prefix']}… ($1.00) would be exceeded" in refusal.body["error"]["message"]

    expected_micros = round(allowed * PRICED_REQUEST_USD * 1_000_000)
    if redis_url:
        # The shared counter: settlements are applied in the background, so poll (bounded).
        counter = f"{redis_prefix}bu:k:{key['id']}:d:{day}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            spent, reserved = await redis.get(counter), await redis.get(counter + ":rs")
            if int(spent or 0) == expected_micros and int(reserved or 0) == 0:
                break
            await asyncio.sleep(0.05)
        assert int(spent or 0) == expected_micros and int(reserved or 0) == 0, (spent, reserved)
    # The ledger (written in the background) ends up with every request and the same spend.
    url = database_url or str(cluster.env["BASTION_DATABASE_URL"])
    deadline = time.monotonic() + 20
    recorded, spend = await ledger_spend(url, key["id"])
    while recorded < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        recorded, spend = await ledger_spend(url, key["id"])
    assert recorded == 200
    assert spend <= 1.0 + PRICED_REQUEST_USD
    assert spend == pytest.approx(allowed * PRICED_REQUEST_USD)
