"""No 500 on malformed input: every session route answers a 4xx in Bastion's JSON error shape."""

from __future__ import annotations

import uuid

import pytest

from tests.sessions.support import SessionsEnv


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """Input validation, not storage: SQLite is enough here."""
    return sqlite_database_url


BODIES: list[bytes] = [
    b"",
    b"not json",
    b"[]",
    b'"text"',
    b"null",
    b"42",
    b"{}",
    b'{"agent_id": 1, "message": 2}',
    b'{"prompt_id": null}',
    b'{"prompt_id": ""}',
    b'{"prompt_id": ["a"]}',
    b'{"prompt_id": "' + b"p" * 500 + b'"}',
    b'{"prompt_id": "support-bot", "session_type": 5}',
    b'{"prompt_id": "support-bot", "session_type": "' + b"t" * 100 + b'"}',
    b'{"prompt_id": "support-bot", "version": "one"}',
    b'{"prompt_id": "support-bot", "version": true}',
    b'{"prompt_id": "support-bot", "version": -1}',
    b'{"prompt_id": "support-bot", "label": 3}',
    b'{"prompt_id": "support-bot", "context": "x"}',
    b'{"agent_id": "' + str(uuid.uuid4()).encode() + b'"}',
    b'{"agent_id": "' + str(uuid.uuid4()).encode() + b'", "message": ""}',
    b'{"agent_id": "' + str(uuid.uuid4()).encode() + b'", "message": {"text": "x"}}',
    b'{"agent_id": "\\u0000", "message": "x"}',
    b"{" * 5000,
]
PATHS = ["/api/v1/ai/sessions/start", "/api/v1/ai/sessions/end", "/api/v1/ai/chat", "/api/v1/ai/chat/stream"]


async def test_malformed_bodies_are_client_errors(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    headers = {**env.auth("ann"), "content-type": "application/json"}
    for path in PATHS:
        for body in BODIES:
            response = await env.client.post(path, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (path, body[:80], response.status_code, response.text)
            error = response.json()["error"]
            assert error["message"] and error["type"]


async def test_malformed_queries_and_methods(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    for params in ({"limit": "0"}, {"limit": "abc"}, {"limit": "1000"}, {"cursor": "-1"}, {"cursor": "9" * 40}):
        response = await env.history(agent_id, **params)
        assert response.status_code == 400, (params, response.text)
    assert (await env.client.delete("/api/v1/ai/chat", headers=env.auth("ann"))).status_code == 405
    response = await env.client.get("/api/v1/ai/chat/stream", params={"agent_id": agent_id}, headers=env.auth("ann"))
    assert response.status_code == 400 and response.json()["error"]["param"] == "message"
