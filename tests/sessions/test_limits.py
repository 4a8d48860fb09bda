"""Message limits: per agent 10 a minute, per owner 100 an hour (the seed's defaults), on the limits
package's sliding windows; refusals are 429 with Retry-After. The Redis store keeps them exact
across processes."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from redis.asyncio import Redis

from bastion.config.settings import SessionSettings, Settings
from bastion.errors import RateLimited
from bastion.sessions.limiter import Owner, SessionLimiter
from tests.sessions.support import SessionsEnv

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")


def test_the_defaults_are_the_seeds() -> None:
    defaults = SessionSettings()
    assert defaults.agent_rpm == 10
    assert defaults.user_messages_per_hour == 100


async def test_the_eleventh_message_in_a_minute_is_refused(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    for i in range(10):
        assert (await env.chat(agent_id, f"m{i}")).status_code == 200
    refused = await env.chat(agent_id, "one too many")
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "10 messages per minute" in error["message"]
    assert agent_id in error["message"]
    # The refused message was not sent or stored; another session of the same user still works.
    assert len((await env.history(agent_id)).json()["data"]) == 20
    other = await env.start_ok()
    assert (await env.chat(other)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"sessions": {"user_messages_per_hour": 5}}])
async def test_the_owner_hourly_limit_spans_sessions_and_keys(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    first, second = await env.start_ok(), await env.start_ok()
    for i in range(5):
        agent, who = (first, "ann") if i % 2 else (second, "ann2")
        assert (await env.chat(agent, who=who)).status_code == 200
    refused = await env.chat(first)
    assert refused.status_code == 429
    assert 60 < int(refused.headers["retry-after"]) <= 3600  # an hour's window, not a minute's
    assert "5 messages per hour" in refused.json()["error"]["message"]
    assert "ann@acme.test" in refused.json()["error"]["message"]
    bobs = await env.start_ok("bob")
    assert (await env.chat(bobs, who="bob")).status_code == 200  # another owner is unaffected


@pytest.mark.redis
async def test_redis_limits_are_exact_across_processes() -> None:
    """Two limiters (as in two gateway processes) on one Redis: 30 concurrent messages to one agent,
    alternating between them, admit exactly 10."""
    prefix = f"bastion-test-{uuid.uuid4().hex[:8]}:"
    settings = Settings.model_validate(
        {"redis_url": REDIS_URL, "limits": {"redis_prefix": prefix, "on_redis_failure": "closed"}}
    )
    limiters = [SessionLimiter.build(settings), SessionLimiter.build(settings)]
    owner = Owner("t1", "user", "u1", "user u1")
    agent_id = str(uuid.uuid4())

    async def one(i: int) -> bool:
        try:
            await limiters[i % 2].admit(f"req_{i}", agent_id, owner)
        except RateLimited:
            return False
        return True

    try:
        results = await asyncio.gather(*(one(i) for i in range(30)))
        assert results.count(True) == 10
    finally:
        for limiter in limiters:
            await limiter.stop()
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
