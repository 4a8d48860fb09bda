"""Anthropic's /v1/messages/count_tokens through the running gateway, with the Anthropic SDK's
``messages.count_tokens``: forwarded to an Anthropic deployment's own counter, exact with the
local model's tokenizer, Bastion's documented estimate elsewhere (and when an upstream counter
fails); errors and the answer checked with the Anthropic SDK's types; credentials in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx
from anthropic.types import ErrorResponse, MessageParam, MessageTokensCount, ToolParam

from bastion.usage import count_messages, count_tools
from tests.gateway.openapi_support import openapi_settings
from tests.support.fake_upstream import FakeUpstream, fake_token_count
from tests.support.harness import running_gateway

MESSAGES: list[MessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "Let me check."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks, and in Lyon?"}]},
]
SYSTEM = "You are a weather assistant."
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "The current weather of a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def test_anthropic_deployment_forwards_to_its_counter(
    anthropic_client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    raw = anthropic_client.messages.with_raw_response.count_tokens(
        model="a-ok", system=SYSTEM, messages=MESSAGES, tools=TOOLS
    )
    counted = raw.parse()
    MessageTokensCount.model_validate(counted.model_dump())
    assert raw.headers["x-bastion-token-count"] == "exact"
    (sent,) = fake.requests("a-ok")
    assert sent.path == "/v1/messages/count_tokens"
    # Only what the counter accepts went upstream: no max_tokens, no stream.
    assert set(sent.body) <= {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
    assert sent.body["tools"][0]["name"] == "get_weather" and sent.body["system"]
    assert counted.input_tokens == fake_token_count(sent.body)


def test_a_failing_upstream_counter_falls_back_to_the_estimate(
    anthropic_client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.script("a-ok", ["500"])
    raw = anthropic_client.messages.with_raw_response.count_tokens(model="a-ok", messages=MESSAGES)
    assert raw.headers["x-bastion-token-count"] == "estimate"
    assert 0 < raw.parse().input_tokens < 1000  # not the fake counter's number


def test_openai_deployment_gets_the_documented_estimate(anthropic_client: anthropic.Anthropic) -> None:
    plain = anthropic_client.messages.with_raw_response.count_tokens(model="fake-ok", system=SYSTEM, messages=MESSAGES)
    assert plain.headers["x-bastion-token-count"] == "estimate"
    with_tools = anthropic_client.messages.count_tokens(model="fake-ok", system=SYSTEM, messages=MESSAGES, tools=TOOLS)
    openai_messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks, and in Lyon?"}]},
    ]
    tools = [{"type": "function", "function": {"name": t["name"], "description": t.get("description"),
                                               "parameters": t["input_schema"]}} for t in TOOLS]  # fmt: skip
    assert plain.parse().input_tokens == count_messages(openai_messages)
    assert with_tools.input_tokens == count_messages(openai_messages) + count_tools(tools)


def test_local_model_is_exact(anthropic_client: anthropic.Anthropic) -> None:
    raw = anthropic_client.messages.with_raw_response.count_tokens(model="local/smollm2", messages=MESSAGES)
    assert raw.headers["x-bastion-token-count"] == "exact"
    # The same conversation answered: the model reports the prompt it actually read.
    answer = anthropic_client.messages.create(model="local/smollm2", max_tokens=1, messages=MESSAGES)
    assert raw.parse().input_tokens == answer.usage.input_tokens


def test_errors_in_anthropic_shape(anthropic_client: anthropic.Anthropic, http: httpx.Client) -> None:
    unknown = http.post("/v1/messages/count_tokens", json={"model": "no-such-model", "messages": MESSAGES})
    assert unknown.status_code == 404
    ErrorResponse.model_validate(unknown.json())
    assert unknown.json()["error"]["type"] == "not_found_error"
    bad = http.post("/v1/messages/count_tokens", json={"model": "a-ok", "messages": "hello"})
    assert bad.status_code == 400
    ErrorResponse.model_validate(bad.json())
    assert "messages" in bad.json()["error"]["message"]
    try:
        anthropic_client.messages.count_tokens(model="no-such-model", messages=MESSAGES)
    except anthropic.NotFoundError as exc:
        assert exc.status_code == 404
    else:
        raise AssertionError("an unknown model must be a 404")


async def test_credentials_are_required(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    async with running_gateway(openapi_settings(tmp_path, fake_upstream), timeout_s=30) as env:
        response = await env.client.post(
            "/v1/messages/count_tokens", json={"model": "oa-claude", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert response.status_code == 401
    ErrorResponse.model_validate(response.json())
    assert response.json()["error"]["type"] == "authentication_error"
