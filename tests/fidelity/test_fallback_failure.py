"""A request that fails on its alias and every fallback says what each upstream answered."""

from __future__ import annotations

from pathlib import Path

from tests.fidelity.support import API_KEY, CHAT, CHAT_UPSTREAM, CLAUDE, CLAUDE_UPSTREAM, USER, fidelity_gateway
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.openai_spec import validate


async def test_the_error_names_every_upstream_tried(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.default(CHAT_UPSTREAM, "500")
    leaky = f'{{"type": "error", "error": {{"type": "overloaded_error", "message": "busy, key {API_KEY}"}}}}'
    fake.default(CLAUDE_UPSTREAM, Behaviour.error_body(529, leaky.encode()))
    router = {"retries": 1, "backoff_base_s": 0.001, "backoff_max_s": 0.001, "fallbacks": {CHAT: [CLAUDE]}}
    async with fidelity_gateway(tmp_path, fake, router=router) as env:
        response = await env.client.post("/v1/chat/completions", json={"model": CHAT, "messages": USER})
        assert response.status_code == 503  # the last answer's status (529: overloaded)
        validate("ErrorResponse", response.json())
        message = response.json()["error"]["message"]
        assert message.startswith("all 4 attempts failed: ")
        assert message.count(f"{CHAT_UPSTREAM} (openai {CHAT_UPSTREAM}): answered with an error (500") == 2
        assert message.count(f"{CLAUDE_UPSTREAM} (anthropic {CLAUDE_UPSTREAM}): ") == 2
        assert "overloaded_error" in message and API_KEY not in message

        response = await env.client.post("/v1/messages", json={"model": CHAT, "messages": USER, "max_tokens": 5})
        assert response.status_code == 503
        assert response.json()["error"]["message"].startswith("all 4 attempts failed: ")
