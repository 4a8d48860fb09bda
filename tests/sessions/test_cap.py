"""At most ``max_active_per_user`` (10) active sessions per owner: the 11th start is a 409 naming the
cap, also when the starts race (one process here; two processes in test_cluster.py)."""

from __future__ import annotations

import asyncio

from tests.sessions.support import SessionsEnv


async def test_the_eleventh_start_is_refused(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agents = [await env.start_ok() for _ in range(10)]
    refused = await env.start()
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "session_limit_reached" and error["type"] == "invalid_request_error"
    assert "At most 10 active sessions per user" in error["message"] and "ann@acme.test" in error["message"]
    # The cap is per owner: the same user's other key is refused too, another user is not.
    assert (await env.start("ann2")).status_code == 409
    assert (await env.start("bob")).status_code == 200
    # Ending one frees a place.
    assert (await env.end(agents[0])).status_code == 200
    assert (await env.start()).status_code == 200
    assert (await env.start()).status_code == 409


async def test_expired_sessions_do_not_count(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    for _ in range(10):
        await env.start_ok()
    env.clock.advance(1801)  # all ten idle past the timeout, none swept yet
    assert (await env.start()).status_code == 200
    assert len((await env.active()).json()["data"]) == 1


async def test_twenty_concurrent_starts_admit_exactly_ten(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    responses = await asyncio.gather(*(env.start("ann" if i % 2 else "ann2") for i in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [409] * 10, [r.text for r in responses if r.status_code not in (200, 409)]
    assert len((await env.active()).json()["data"]) == 10
