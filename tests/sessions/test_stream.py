"""``/api/v1/ai/chat/stream``: SSE deltas, a final event with the interaction id, the reply stored
when the stream completes; errors before the first byte are JSON errors, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sessions.support import UPSTREAM, SessionsEnv
from tests.support.fake_upstream import FakeUpstream, answer_text


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """HTTP behaviour, not storage: SQLite is enough here."""
    return sqlite_database_url


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_the_stream_sends_deltas_then_done_and_stores_the_reply(
    sessions_env: SessionsEnv, fake: FakeUpstream
) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    async with env.client.stream(
        "POST", "/api/v1/ai/chat/stream", json={"agent_id": agent_id, "message": "Hi"}, headers=env.auth("ann")
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = (await response.aread()).decode()
    events = parse_events(text)
    kinds = [kind for kind, _ in events]
    # The output guard holds text back until it is checked (the last words, against the vault
    # prompt), so this four-word answer may arrive as a single delta.
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) >= 2
    reply = "".join(data["text"] for kind, data in events if kind == "delta")
    assert reply == answer_text(UPSTREAM)
    done = events[-1][1]
    assert done["interaction_id"].startswith("req_") and done["agent_id"] == agent_id and done["message"] == reply
    assert fake.requests(UPSTREAM)[-1].stream
    history = (await env.history(agent_id)).json()["data"]
    assert [(m["role"], m["content"], m["interaction_id"]) for m in history] == [
        ("user", "Hi", done["interaction_id"]),
        ("assistant", reply, done["interaction_id"]),
    ]


async def test_get_with_query_parameters_streams_too(sessions_env: SessionsEnv) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    response = await env.client.get(
        "/api/v1/ai/chat/stream", params={"agent_id": agent_id, "message": "Hi"}, headers=env.auth("ann")
    )
    assert response.status_code == 200 and parse_events(response.text)[-1][0] == "done"


async def test_an_upstream_failure_is_a_json_error_and_nothing_is_stored(
    sessions_env: SessionsEnv, fake: FakeUpstream
) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    fake.script(UPSTREAM, ["500", "500"])
    response = await env.client.post(
        "/api/v1/ai/chat/stream", json={"agent_id": agent_id, "message": "Hi"}, headers=env.auth("ann")
    )
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error"
    assert (await env.chat(agent_id)).status_code == 502
    assert (await env.history(agent_id)).json()["data"] == []


async def test_a_stream_cut_mid_way_ends_with_an_error_event_and_stores_nothing(
    sessions_env: SessionsEnv, fake: FakeUpstream
) -> None:
    env = sessions_env
    agent_id = await env.start_ok()
    fake.script(UPSTREAM, ["cut"])
    response = await env.client.post(
        "/api/v1/ai/chat/stream", json={"agent_id": agent_id, "message": "Hi"}, headers=env.auth("ann")
    )
    kinds = [kind for kind, _ in parse_events(response.text)]
    assert kinds[0] == "delta" and kinds[-1] == "error" and "done" not in kinds
    assert (await env.history(agent_id)).json()["data"] == []
