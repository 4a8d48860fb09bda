"""Every chat answer in the OpenAI dialect matches the official OpenAPI document whatever the
upstream sent (an answer without ``refusal``, an Anthropic upstream, an error mid-stream), and is
named by the alias the client asked for; the upstream's own name is in a header."""

from __future__ import annotations

from pathlib import Path

import anthropic
import orjson

from tests.fidelity.support import (
    API_KEY,
    CHAT,
    CHAT_UPSTREAM,
    CLAUDE,
    CLAUDE_UPSTREAM,
    USER,
    anthropic_events,
    fidelity_gateway,
    openai_events,
)
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.openai_spec import validate

UPSTREAM_HEADER = "x-bastion-upstream-model"

#: What vLLM and Ollama send: no ``refusal``, no ``logprobs``, a model name of their own.
BARE_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "/models/served-name",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


async def test_answers_carry_refusal_and_the_alias(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.script(CHAT_UPSTREAM, [Behaviour.error_body(200, orjson.dumps(BARE_ANSWER))])
    async with fidelity_gateway(tmp_path, fake) as env:
        for alias, upstream in ((CHAT, CHAT_UPSTREAM), (CLAUDE, CLAUDE_UPSTREAM)):
            response = await env.client.post("/v1/chat/completions", json={"model": alias, "messages": USER})
            assert response.status_code == 200, response.text
            body = response.json()
            validate("CreateChatCompletionResponse", body)
            assert body["choices"][0]["message"]["refusal"] is None
            assert body["choices"][0]["logprobs"] is None
            assert body["model"] == alias
            assert response.headers[UPSTREAM_HEADER] == upstream


async def test_every_stream_chunk_matches_the_spec(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    async with fidelity_gateway(tmp_path, fake) as env:
        for alias in (CHAT, CLAUDE):
            for include_usage in (False, True):
                body = {
                    "model": alias,
                    "messages": USER,
                    "stream": True,
                    "stream_options": {"include_usage": include_usage},
                }
                response = await env.client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200
                *chunks, done = openai_events(response.content)
                assert done == "[DONE]"
                for chunk in chunks:
                    validate("CreateChatCompletionStreamResponse", chunk)
                    assert chunk["model"] == alias
                first = chunks[0]["choices"][0]["delta"]
                assert first["role"] == "assistant" and first["refusal"] is None
                assert (chunks[-1].get("usage") is not None) is include_usage


async def test_an_error_mid_stream_has_the_full_error_shape(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.script(CHAT_UPSTREAM, ["stream_error"])
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/chat/completions", json={"model": CHAT, "messages": USER, "stream": True})
    events = openai_events(response.content)
    *chunks, error = events
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    validate("ErrorResponse", error)
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert API_KEY not in error["error"]["message"]  # the deployment's key is scrubbed


async def test_anthropic_dialect_names_the_alias_too(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    request = {"max_tokens": 20, "messages": USER}
    async with fidelity_gateway(tmp_path, fake) as env:
        for alias, upstream in ((CHAT, CHAT_UPSTREAM), (CLAUDE, CLAUDE_UPSTREAM)):
            response = await env.client.post("/v1/messages", json={**request, "model": alias})
            assert response.status_code == 200, response.text
            message = anthropic.types.Message.model_validate(response.json())
            assert message.model == alias
            assert response.headers[UPSTREAM_HEADER] == upstream
            response = await env.client.post("/v1/messages", json={**request, "model": alias, "stream": True})
            events = anthropic_events(response.content)
            assert events[0]["message"]["model"] == alias
            assert response.headers[UPSTREAM_HEADER] == upstream


async def test_an_error_mid_stream_has_anthropics_shape(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.script(CLAUDE_UPSTREAM, ["stream_error"])
    body = {"model": CLAUDE, "messages": USER, "max_tokens": 20, "stream": True}
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/messages", json=body)
    events = anthropic_events(response.content)
    error = anthropic.types.ErrorResponse.model_validate(events[-1])
    assert error.type == "error" and API_KEY not in error.error.message
