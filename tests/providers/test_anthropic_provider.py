"""The native Anthropic provider against a fake Anthropic API served by aiohttp on 127.0.0.1.

Canned answers and events are validated with the ``anthropic`` SDK's own models first, so the fake
upstream speaks the real wire shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic.types as at
import orjson
import pytest
from aiohttp import web
from pydantic import BaseModel

from bastion.config.settings import DeploymentSettings, TimeoutSettings
from bastion.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from bastion.providers.anthropic import AnthropicProvider
from bastion.providers.anthropic_translate import (
    AnthropicStreamTranslator,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from bastion.providers.base import ChatRequest, Deployment, Usage

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "message_start": at.RawMessageStartEvent,
    "content_block_start": at.RawContentBlockStartEvent,
    "content_block_delta": at.RawContentBlockDeltaEvent,
    "content_block_stop": at.RawContentBlockStopEvent,
    "message_delta": at.RawMessageDeltaEvent,
    "message_stop": at.RawMessageStopEvent,
}

MESSAGE: dict[str, Any] = {
    "id": "msg_01XYZ",
    "type": "message",
    "role": "assistant",
    "model": "claude-real",
    "content": [
        {"type": "thinking", "thinking": "Need the tool.", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 30,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
    },
}

EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            **MESSAGE,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 1000},
        },
    },
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "Paris"}'}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 30},
    },
    {"type": "message_stop"},
]


def validated(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at.Message.model_validate(MESSAGE)
    for event in events:
        model = EVENT_MODELS.get(event["type"])
        if model is not None:
            model.model_validate(event)
    return events


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in validated(events))


def error_json(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


class FakeAnthropic:
    """Answers by the ``model`` the provider sends, and records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        model = body["model"]
        if model == "ok":
            if body.get("stream"):
                return web.Response(body=sse(EVENTS), content_type="text/event-stream")
            return web.json_response(MESSAGE)
        if model == "bad-request":
            return web.Response(status=400, body=error_json("invalid_request_error", "max_tokens: too large"))
        if model == "rate-limited":
            body_bytes = error_json("rate_limit_error", "slow down")
            return web.Response(status=429, body=body_bytes, headers={"retry-after": "7"})
        if model == "overloaded":
            return web.Response(status=529, body=error_json("overloaded_error", "Overloaded"))
        if model == "server-error":
            return web.Response(status=500, body=error_json("api_error", "Internal server error"))
        if model == "malformed":
            return web.Response(body=b'{"id": "msg_1", "content": [', content_type="application/json")
        if model == "error-event":
            events = [*EVENTS[:4]]
            payload = sse(events) + b"event: error\ndata: " + error_json("overloaded_error", "Overloaded") + b"\n\n"
            return web.Response(body=payload, content_type="text/event-stream")
        if model == "ends-early":
            return web.Response(body=sse(EVENTS[:5]), content_type="text/event-stream")
        if model == "cut":
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(sse(EVENTS[:4]))
            assert request.transport is not None
            request.transport.abort()  # the connection dies mid-body, no chunked terminator
            return response
        raise AssertionError(f"unexpected model {model}")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    app = web.Application()
    app.router.add_post("/v1/messages", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


ProviderFactory = Callable[[str], Awaitable[AnthropicProvider]]


@pytest.fixture
async def provider(upstream: tuple[FakeAnthropic, str]) -> AsyncIterator[ProviderFactory]:
    started: list[AnthropicProvider] = []

    async def make(model: str) -> AnthropicProvider:
        settings = DeploymentSettings(provider="anthropic", model=model, api_base=upstream[1], api_key="sk-test")
        deployment = Deployment(
            id=f"anthropic-{model}", alias="claude", settings=settings, timeouts=TimeoutSettings(read_s=10)
        )
        instance = AnthropicProvider(deployment)
        await instance.start()
        started.append(instance)
        return instance

    yield make
    for instance in started:
        await instance.aclose()


OPENAI_BODY: dict[str, Any] = {
    "model": "claude",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
}


def chat(stream: bool = False) -> ChatRequest:
    return ChatRequest(body=dict(OPENAI_BODY), request_id="req_1", stream=stream)


# --- the provider over HTTP -----------------------------------------------------------------------


async def test_chat_sends_anthropic_request_and_translates_answer(
    upstream: tuple[FakeAnthropic, str], provider: ProviderFactory
) -> None:
    response = await (await provider("ok")).chat(chat())
    headers, sent = upstream[0].requests[-1]
    assert headers["x-api-key"] == "sk-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {name.lower() for name in headers}
    assert sent == {
        "model": "ok",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
    }
    body = response.body
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-01XYZ"
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
        ],
    }
    assert body["usage"]["prompt_tokens"] == 1212
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert body["usage"]["cache_creation_input_tokens"] == 200
    assert response.usage == Usage(
        prompt_tokens=1212, completion_tokens=30, cached_tokens=1000, cache_creation_tokens=200
    )


async def test_stream_translates_events_to_chunks(
    upstream: tuple[FakeAnthropic, str], provider: ProviderFactory
) -> None:
    chunks = [c async for c in (await provider("ok")).stream_chat(chat(stream=True))]
    assert upstream[0].requests[-1][1]["stream"] is True
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-01XYZ" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(call["function"]["arguments"] for call in calls) == '{"city": "Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 1012 and last["usage"]["completion_tokens"] == 30
    assert Usage.from_openai(last["usage"]) == Usage(prompt_tokens=1012, completion_tokens=30, cached_tokens=1000)


async def test_400_is_invalid_request_and_not_retried(provider: ProviderFactory) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await (await provider("bad-request")).chat(chat())
    assert caught.value.status == 400
    assert "max_tokens: too large" in caught.value.message
    assert not getattr(caught.value, "retryable", False)


async def test_429_carries_retry_after(provider: ProviderFactory) -> None:
    with pytest.raises(UpstreamError) as caught:
        await (await provider("rate-limited")).chat(chat())
    assert caught.value.status == 429
    assert caught.value.upstream_status == 429
    assert caught.value.retry_after_s == 7.0
    assert caught.value.retryable


async def test_529_overloaded_is_unavailable(provider: ProviderFactory) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await (await provider("overloaded")).stream_chat(chat(stream=True)).__anext__()
    assert caught.value.retryable and caught.value.upstream_status == 529


async def test_500_is_retryable_upstream_error(provider: ProviderFactory) -> None:
    with pytest.raises(UpstreamError) as caught:
        await (await provider("server-error")).chat(chat())
    assert caught.value.retryable and caught.value.upstream_status == 500


async def test_malformed_json_is_upstream_error(provider: ProviderFactory) -> None:
    with pytest.raises(UpstreamError, match="malformed JSON"):
        await (await provider("malformed")).chat(chat())


async def test_error_event_mid_stream_is_not_retryable(provider: ProviderFactory) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as caught:
        async for item in (await provider("error-event")).stream_chat(chat(stream=True)):
            received.append(item)
    assert not caught.value.retryable
    assert "Overloaded" in caught.value.message
    assert received[-1]["choices"][0]["delta"] == {"content": "Let me "}  # what came first went through


async def test_stream_ending_before_message_stop_is_an_error(provider: ProviderFactory) -> None:
    with pytest.raises(UpstreamError, match="ended the stream early"):
        async for _ in (await provider("ends-early")).stream_chat(chat(stream=True)):
            pass


async def test_connection_cut_mid_stream_is_an_error(provider: ProviderFactory) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as caught:
        async for item in (await provider("cut")).stream_chat(chat(stream=True)):
            received.append(item)
    assert caught.value.retryable  # nothing was promised yet that a retry could duplicate upstream
    assert received[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_untranslatable_request_fails_before_any_network_call(
    upstream: tuple[FakeAnthropic, str], provider: ProviderFactory
) -> None:
    body = {**OPENAI_BODY, "tools": [{"type": "web_search_preview"}]}
    with pytest.raises(InvalidRequest) as caught:
        await (await provider("ok")).chat(ChatRequest(body=body, request_id="r"))
    assert caught.value.param == "tools.0.type"
    assert upstream[0].requests == []


def test_key_from_environment_only_for_anthropic_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
    monkeypatch.setenv("MY_KEY", "sk-ref")

    def build(**settings: Any) -> AnthropicProvider:
        deployment = Deployment(
            id="d",
            alias="claude",
            settings=DeploymentSettings(provider="anthropic", model="m", **settings),
            timeouts=TimeoutSettings(),
        )
        return AnthropicProvider(deployment)

    default = build()
    assert default.api_base == "https://api.anthropic.com"
    assert default.headers["x-api-key"] == "sk-env"
    assert "x-api-key" not in build(api_base="https://proxy.example/v1").headers
    assert build(api_base="https://proxy.example/v1").api_base == "https://proxy.example"
    assert build(api_key="env:MY_KEY").headers["x-api-key"] == "sk-ref"


# --- translation details (OpenAI -> Anthropic) ----------------------------------------------------


def test_request_defaults_and_dropped_fields() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Rule A."}]},
            {"role": "system", "content": "Rule B."},
            {"role": "user", "content": "Hi", "name": "bob"},
        ],
        "max_completion_tokens": 300,
        "max_tokens": 999,
        "stop": "END",
        "temperature": 1.7,
        "top_p": 0.5,
        "user": "u-1",
        "n": 1,
        "seed": 3,
        "presence_penalty": 0.1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "stream_options": {"include_usage": True},
    }
    assert openai_to_anthropic_request(body, "claude-real") == {
        "model": "claude-real",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Rule A."}, {"type": "text", "text": "Rule B."}],
        "messages": [{"role": "user", "content": "Hi"}],
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "top_p": 0.5,
        "metadata": {"user_id": "u-1"},
    }
    assert openai_to_anthropic_request({"messages": [], "max_tokens": 50}, "m")["max_tokens"] == 50


def test_request_tools_images_and_tool_messages() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "Sure thing  "},
        ],
        "tools": [
            {"type": "function", "function": {"name": "a", "description": "A", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "b"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    out = openai_to_anthropic_request(body, "m")
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
                {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "two"}]},
                {"type": "text", "text": "Thanks"},
            ],
        },
        {"role": "assistant", "content": "Sure thing"},  # a prefill may not end in whitespace
    ]
    assert out["tools"] == [
        {"name": "a", "input_schema": {"type": "object"}, "description": "A"},
        {"name": "b", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}]}
    body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert openai_to_anthropic_request(body, "m").get("tool_choice") == expected


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "messages.0.content.0"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages.0.content.0.file"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}, "messages.0.content.0.image_url.url"),
    ],
)
def test_untranslatable_parts_are_refused(part: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        openai_to_anthropic_request({"messages": [{"role": "user", "content": [part]}]}, "m")
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    data = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert anthropic_to_openai_response(data, "m", "up")["choices"][0]["finish_reason"] == finish


def test_response_without_content_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="without content"):
        anthropic_to_openai_response({"id": "msg_1", "type": "message"}, "m", "upstream x")


def test_stream_translator_keeps_cumulative_usage_and_ignores_thinking() -> None:
    translator = AnthropicStreamTranslator("m", "up")
    events = [
        EVENTS[0],
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": "Hi"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 9, "input_tokens": 15, "cache_read_input_tokens": None},
        },
        {"type": "message_stop"},
    ]
    chunks = [c for event in events for c in translator.feed(event)]
    assert translator.done
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["prompt_tokens"] == 1015  # 15 fresh (cumulative) + 1000 read at start
    assert chunks[-1]["usage"]["completion_tokens"] == 9
