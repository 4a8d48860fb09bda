"""Ownership: a session is its owner's alone. Another user's, a user-less key's or another tenant's
agent_id answers 404 on every route, exactly like an id that does not exist; the owner's other
keys (same user) may use it. Malformed ids are a 404 (or a 400 for a non-string), never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.sessions.support import SessionsEnv


async def _every_route(env: SessionsEnv, agent_id: Any, who: str) -> list[httpx.Response]:
    history_id = agent_id if isinstance(agent_id, str) else str(agent_id)
    return [
        await env.chat(agent_id, who=who),
        await env.client.post(
            "/api/v1/ai/chat/stream", json={"agent_id": agent_id, "message": "hi"}, headers=env.auth(who)
        ),
        await env.history(history_id, who=who),
        await env.end(agent_id, who=who),
    ]


async def test_another_owners_agent_id_is_not_found_on_every_route(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok("ann")
    unknown = await _every_route(env, str(uuid.uuid4()), "ann")
    for who in ("bob", "svc", "carl"):  # another user, a key without a user, another tenant
        for response, reference in zip(await _every_route(env, agent_id, who), unknown, strict=True):
            assert response.status_code == 404, (who, response.request.url, response.text)
            assert response.json() == reference.json()  # indistinguishable from an unknown id
        assert agent_id not in (await env.active(who)).text
    # Nothing above touched the session: it is still active and empty for its owner.
    listed = (await env.active("ann")).json()["data"]
    assert [(s["agent_id"], s["status"], s["message_count"]) for s in listed] == [(agent_id, "active", 0)]


async def test_the_owners_other_key_shares_the_session(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok("ann")
    assert (await env.chat(agent_id, "from the second key", who="ann2")).status_code == 200
    assert [s["agent_id"] for s in (await env.active("ann2")).json()["data"]] == [agent_id]
    assert (await env.history(agent_id, who="ann")).json()["data"][0]["content"] == "from the second key"


async def test_a_key_without_a_user_owns_its_sessions(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok("svc")
    assert (await env.chat(agent_id, who="svc")).status_code == 200
    assert (await env.chat(agent_id, who="ann")).status_code == 404
    assert [s["agent_id"] for s in (await env.active("svc")).json()["data"]] == [agent_id]


async def test_malformed_agent_ids(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    for bad in ("not-a-uuid", "", "1" * 500, "../../etc/passwd", "%00"):
        for response in [await env.chat(bad), await env.end(bad)]:
            assert response.status_code in (400, 404), (bad, response.text)
            assert response.json()["error"]["param"] == "agent_id"
    for bad in ("not-a-uuid", "1" * 300, "%2e%2e"):
        response = await env.history(bad)
        assert response.status_code == 404, (bad, response.text)
        assert response.json()["error"]["type"] in ("not_found_error",)
    for not_a_string in (None, 7, ["x"], {"a": 1}, True):
        for response in [await env.chat(not_a_string), await env.end(not_a_string)]:
            assert response.status_code == 400, (not_a_string, response.text)
            assert response.json()["error"]["param"] == "agent_id"
