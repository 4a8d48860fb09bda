"""The Anthropic dialect's stream encoder (OpenAI chunks -> Anthropic SSE events), and proof that
the official ``anthropic`` SDK accepts what the dialect produces: the bytes are served by a tiny
aiohttp app and parsed by ``messages.create`` / ``messages.stream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from bastion.dialects.anthropic import AnthropicStreamEncoder, error_event, openai_response_to_anthropic
from bastion.errors import BastionError
from bastion.providers.base import Usage


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "chatcmpl-s",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-x",
    "choices": [],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 10},
    },
}

TOOL_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "weather"}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk({}, "tool_calls"),
    USAGE_CHUNK,
]

TEXT_STREAM = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi there"}), chunk({}, "length")]


def encode_all(chunks: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
    encoder = AnthropicStreamEncoder("claude-alias", "msg_stream1")
    return b"".join(encoder.encode(c) for c in chunks) + encoder.finish(usage)


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = orjson.loads(data_line[6:])
        assert payload["type"] == name_line[7:]
        events.append((name_line[7:], payload))
    return events


def test_encoder_event_sequence() -> None:
    events = parse_sse(encode_all(TOOL_STREAM))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_stream1" and start["model"] == "claude-alias" and start["content"] == []
    assert events[6][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "call_9", "name": "weather", "input": {}},
    }
    assert events[7][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city": '}
    assert events[10][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 20,
            "output_tokens": 7,
            "cache_read_input_tokens": 10,
            "cache_creation_input_tokens": 0,
        },
    }


def test_encoder_first_text_passes_straight_through() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1")
    first = parse_sse(encoder.encode(chunk({"content": "A"})))
    assert [name for name, _ in first][-1] == "content_block_delta"
    assert first[-1][1]["delta"] == {"type": "text_delta", "text": "A"}
    assert encoder.encode(chunk({"content": ""})) == b""


def test_encoder_finish_is_idempotent_and_usage_argument_wins() -> None:
    encoder = AnthropicStreamEncoder("m", "msg_1")
    encoder.encode(chunk({"content": "x"}))
    done = parse_sse(encoder.finish(Usage(prompt_tokens=50, completion_tokens=3, cached_tokens=40)))
    delta = next(payload for name, payload in done if name == "message_delta")
    assert delta["usage"]["input_tokens"] == 10 and delta["usage"]["cache_read_input_tokens"] == 40
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert encoder.finish(None) == b""
    assert encoder.encode(chunk({"content": "late"})) == b""


def test_encoder_reports_cache_writes_seen_in_chunks() -> None:
    usage = {"prompt_tokens": 1100, "completion_tokens": 4, "cache_creation_input_tokens": 1000}
    encoder = AnthropicStreamEncoder("m", "msg_1")
    encoder.encode(chunk({"content": "x"}, "stop"))
    encoder.encode({**USAGE_CHUNK, "usage": usage})
    # The HTTP layer passes the same usage again, as a ``Usage`` that cannot hold cache writes.
    done = parse_sse(encoder.finish(Usage.from_openai(usage)))
    delta = next(payload for name, payload in done if name == "message_delta")
    assert delta["usage"] == {
        "input_tokens": 100,
        "output_tokens": 4,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 1000,
    }


def test_encoder_without_any_chunk_still_makes_a_valid_message() -> None:
    events = parse_sse(AnthropicStreamEncoder("m", "msg_1").finish(None))
    assert [name for name, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[2][1]["usage"] == {"output_tokens": 0}


def test_error_event_shape() -> None:
    assert parse_sse(error_event(BastionError("upstream fell over", status=503))) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "upstream fell over"}})
    ]


# --- the Anthropic SDK accepts what the dialect produces --------------------------------------------


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[bytes, str], Any]]:
    """Start an app answering ``POST /v1/messages`` with given bytes; yields a starter."""
    runners: list[web.AppRunner] = []
    clients: list[anthropic.AsyncAnthropic] = []

    async def start(payload: bytes, content_type: str) -> anthropic.AsyncAnthropic:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=payload, headers={"content-type": content_type})

        app = web.Application()
        app.router.add_post("/v1/messages", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="x", max_retries=0)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


ARGS: dict[str, Any] = {
    "model": "claude-alias",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}


async def test_sdk_parses_encoded_stream_events(serve: Callable[[bytes, str], Any]) -> None:
    client = await serve(encode_all(TOOL_STREAM), "text/event-stream")
    stream = await client.messages.create(**ARGS, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == 2


async def test_sdk_message_stream_final_message(serve: Callable[[bytes, str], Any]) -> None:
    client = await serve(encode_all(TOOL_STREAM), "text/event-stream")
    async with client.messages.stream(**ARGS) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello"
    assert final.id == "msg_stream1"
    assert final.content[0].type == "text" and final.content[0].text == "Hello"
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.name == "weather" and tool.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 7
    assert final.usage.input_tokens == 20
    assert final.usage.cache_read_input_tokens == 10


async def test_sdk_text_stream_with_max_tokens(serve: Callable[[bytes, str], Any]) -> None:
    client = await serve(encode_all(TEXT_STREAM, Usage(prompt_tokens=9, completion_tokens=2)), "text/event-stream")
    async with client.messages.stream(**ARGS) as stream:
        final = await stream.get_final_message()
    assert [block.text for block in final.content if block.type == "text"] == ["Hi there"]
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 2)


async def test_sdk_raises_on_mid_stream_error_event(serve: Callable[[bytes, str], Any]) -> None:
    encoder = AnthropicStreamEncoder("claude-alias", "msg_e")
    payload = encoder.encode(chunk({"content": "partial"})) + error_event(
        BastionError("upstream is unavailable", status=503)
    )
    client = await serve(payload, "text/event-stream")
    with pytest.raises(anthropic.APIStatusError, match="upstream is unavailable"):
        async with client.messages.stream(**ARGS) as stream:
            await stream.get_final_message()


async def test_sdk_parses_translated_message(serve: Callable[[bytes, str], Any]) -> None:
    message = {
        "role": "assistant",
        "content": "Sunny.",
        "tool_calls": [{"id": "call_2", "type": "function", "function": {"name": "log", "arguments": '{"n": 1}'}}],
    }
    completion = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 15, "prompt_tokens_details": {"cached_tokens": 100}},
    }
    body = openai_response_to_anthropic(completion, "claude-alias")
    client = await serve(orjson.dumps(body), "application/json")
    final = await client.messages.create(**ARGS)
    assert isinstance(final, anthropic.types.Message)
    assert isinstance(final.content[0], anthropic.types.TextBlock) and final.content[0].text == "Sunny."
    assert isinstance(final.content[1], anthropic.types.ToolUseBlock) and final.content[1].input == {"n": 1}
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 20 and final.usage.output_tokens == 15
    assert final.usage.cache_read_input_tokens == 100
