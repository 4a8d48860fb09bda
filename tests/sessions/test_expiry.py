"""Lifetimes with an injected clock: the 30-minute idle timeout, the maximum life, and the cleanup
task that marks stale sessions expired (idempotent, so every process may run it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bastion.config.settings import SessionSettings
from bastion.sessions.models import AgentSession
from tests.sessions.support import SessionsEnv, eventually


async def _status(env: SessionsEnv, agent_id: str) -> str:
    async with env.db.session() as session:
        status = await session.scalar(select(AgentSession.status).where(AgentSession.agent_id == agent_id))
    return str(status)


def test_lifetime_defaults_are_the_seeds() -> None:
    defaults = SessionSettings()
    assert (defaults.idle_timeout_s, defaults.max_life_s, defaults.max_active_per_user) == (1800, 86400, 10)
    assert defaults.cleanup_interval_s == 60


async def test_idle_timeout(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    env.clock.advance(1799)
    assert (await env.chat(agent_id)).status_code == 200  # activity moves the idle deadline
    env.clock.advance(1799)
    assert (await env.chat(agent_id)).status_code == 200
    env.clock.advance(1800)
    response = await env.chat(agent_id)
    assert response.status_code == 410, response.text
    error = response.json()["error"]
    assert error["code"] == "session_expired" and "30 minutes" in error["message"]
    assert await _status(env, agent_id) == "expired"
    assert (await env.active()).json()["data"] == []
    assert len((await env.history(agent_id)).json()["data"]) == 4  # the history stays readable
    assert (await env.end(agent_id)).json()["status"] == "expired"


@pytest.mark.parametrize("settings_overrides", [{"sessions": {"max_life_s": 3600}}])
async def test_maximum_life_holds_however_active_the_session(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    started = (await env.start()).json()
    agent_id = started["agent_id"]
    for _ in range(2):
        env.clock.advance(1700)
        assert (await env.chat(agent_id)).status_code == 200
    env.clock.advance(200 + 1)  # 3601 s after the start, 201 s after the last message
    response = await env.chat(agent_id)
    assert response.status_code == 410
    assert "at most 1 hours" in response.json()["error"]["message"]
    assert await _status(env, agent_id) == "expired"


async def test_stale_sessions_are_not_listed_before_the_sweep(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    env.clock.advance(1801)
    assert (await env.active()).json()["data"] == []
    assert await _status(env, agent_id) == "active"  # not yet marked: only hidden


async def test_the_sweep_marks_idle_and_old_sessions_expired(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    idle = await env.start_ok("ann")
    env.clock.advance(1000)
    busy = await env.start_ok("bob")
    fresh = await env.start_ok("svc")
    env.clock.advance(900)  # idle: 1900 s without a message; busy and fresh: 900 s
    assert await env.service.sweep() == 1
    assert [await _status(env, a) for a in (idle, busy, fresh)] == ["expired", "active", "active"]
    assert await env.service.sweep() == 0  # idempotent
    # Past the maximum life of busy and fresh (both started at +1000 s), though recently active.
    env.clock.advance(86400 - 900 + 1)
    async with env.db.transaction() as session:
        await session.execute(update(AgentSession).values(last_activity_at=env.clock.now - timedelta(seconds=10)))
    assert await env.service.sweep() == 2
    assert [await _status(env, a) for a in (busy, fresh)] == ["expired", "expired"]


@pytest.mark.parametrize("settings_overrides", [{"sessions": {"cleanup_interval_s": 0.05}}])
async def test_the_cleanup_task_runs_by_itself(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    env.clock.advance(1801)

    async def expired() -> Any:
        return await _status(env, agent_id) == "expired"

    await eventually(expired, timeout_s=10, what="the cleanup task marks the idle session")
