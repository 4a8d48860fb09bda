"""The Anthropic dialect: request validation and translation, answers, the SSE encoder, and the
round trip Anthropic client -> OpenAI shape -> Anthropic upstream.

What the encoder produces is also fed to the official ``anthropic`` SDK, served by a tiny
aiohttp app, so the event grammar is checked by the parser real clients use.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from bastion.dialects.anthropic import (
    AnthropicStreamEncoder,
    error_event,
    openai_response_to_anthropic,
    parse_anthropic_request,
    strip_cache_control,
)
from bastion.errors import InvalidRequest
from bastion.providers.anthropic_translate import openai_to_anthropic_request
from bastion.providers.base import Usage

EPHEMERAL = {"type": "ephemeral"}


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(overrides)
    return body


def cache_paths(value: Any, path: str = "") -> list[str]:
    """Every place a ``cache_control`` key occurs, as dotted paths (for counting, not equality)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "cache_control":
                found.append(path or "<root>")
            found.extend(cache_paths(item, f"{path}.{key}" if path else key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(cache_paths(item, f"{path}.{i}"))
    return found


# --- request: Anthropic -> OpenAI ----------------------------------------------------------------


def test_minimal_request() -> None:
    body, info = parse_anthropic_request(request(system="Be brief.", stop_sequences=["END"], temperature=0.2))
    assert info["model"] == "claude-test"
    assert info["stream"] is False
    assert body == {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "stop": ["END"],
        "temperature": 0.2,
    }


def test_stream_flag_asks_for_usage() -> None:
    body, info = parse_anthropic_request(request(stream=True))
    assert info["stream"] is True
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_sampling_metadata_and_extension_fields() -> None:
    body, _ = parse_anthropic_request(
        request(top_p=0.9, top_k=5, metadata={"user_id": "user-7"}, bastion={"tags": ["a"]}, service_tier="auto")
    )
    assert body["top_p"] == 0.9
    assert body["top_k"] == 5
    assert body["user"] == "user-7"
    assert body["bastion"] == {"tags": ["a"]}
    assert "service_tier" not in body and "metadata" not in body


def test_system_blocks_keep_cache_control() -> None:
    system = [{"type": "text", "text": "Rules.", "cache_control": EPHEMERAL}, {"type": "text", "text": "More."}]
    body, info = parse_anthropic_request(request(system=system))
    assert info["cache_control"] is True
    assert body["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "Rules.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "More."},
        ],
    }
    single, _ = parse_anthropic_request(request(system=[{"type": "text", "text": "Only."}]))
    assert single["messages"][0] == {"role": "system", "content": "Only."}


def test_images_become_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]
    body, _ = parse_anthropic_request(request(messages=[{"role": "user", "content": content}]))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.jpg"},
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
            ],
        }
    ]


def test_tool_use_and_tool_results() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two calls.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go."},
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": [{"type": "text", "text": "timeout"}],
                    "is_error": True,
                },
            ],
        },
    ]
    body, _ = parse_anthropic_request(request(messages=messages))
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "toolu_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
        ],
    }
    # Tool results must follow the assistant's calls directly, so they come before the text.
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "timeout", "is_error": True},
        {"role": "user", "content": "Here you go."},
    ]


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    messages = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "go", "input": {}}]},
    ]
    body, _ = parse_anthropic_request(request(messages=messages))
    assert body["messages"][1]["content"] is None
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_tool_result_images_move_to_the_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "shot"}, image]}
    body, _ = parse_anthropic_request(request(messages=[{"role": "user", "content": [result]}]))
    assert body["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "shot"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
    ]


def test_tool_result_with_only_an_image_keeps_a_text_content() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/p.png"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    body, _ = parse_anthropic_request(request(messages=[{"role": "user", "content": [result]}]))
    assert body["messages"][0] == {"role": "tool", "tool_call_id": "t1", "content": ""}
    assert body["messages"][1]["content"][0]["image_url"]["url"] == "https://example.com/p.png"


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "name": "weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "cache_control": EPHEMERAL,
        }
    ]
    body, _ = parse_anthropic_request(request(tools=tools, tool_choice={"type": "auto"}))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": tools[0]["input_schema"],
                "description": "Current weather",
            },
            "cache_control": EPHEMERAL,
        }
    ]
    assert body["tool_choice"] == "auto"
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "weather"}, {"type": "function", "function": {"name": "weather"}}, None),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    tools = [{"name": "weather", "input_schema": {"type": "object"}}]
    body, _ = parse_anthropic_request(request(tools=tools, tool_choice=choice))
    assert body["tool_choice"] == expected
    assert body.get("parallel_tool_calls") is parallel


def test_structured_output_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    body, _ = parse_anthropic_request(request(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_thinking_config_is_dropped() -> None:
    body, _ = parse_anthropic_request(request(thinking={"type": "enabled", "budget_tokens": 1024}))
    assert "thinking" not in body


def test_plain_text_and_pdf_documents() -> None:
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes."}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
    ]
    body, _ = parse_anthropic_request(request(messages=[{"role": "user", "content": content}]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Notes."},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
    ]


INVALID: list[tuple[Any, str | None, str]] = [
    ([1, 2], None, "request body must be a JSON object"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model", "model is required"),
    (request(max_tokens=None), "max_tokens", "max_tokens must be an integer"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "max_tokens is required"),
    (request(max_tokens=0), "max_tokens", "max_tokens must be at least 1"),
    (request(max_tokens="10"), "max_tokens", "max_tokens must be an integer"),
    (request(messages=[]), "messages", "messages must not be empty"),
    (request(messages=[{"role": "system", "content": "x"}]), "messages.0.role", "must be user or assistant"),
    (request(messages=[{"role": "user"}]), "messages.0.content", "messages.0.content is required"),
    (request(messages=[{"role": "user", "content": 5}]), "messages.0.content", "must be a string or an array"),
    (
        request(messages=[{"role": "user", "content": [{"type": "video"}]}]),
        "messages.0.content.0.type",
        "'video' is not supported",
    ),
    (
        request(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        "messages.0.content.0.type",
        "messages.0.content.0.type is required",
    ),
    (
        request(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages.0.content.0.text",
        "messages.0.content.0.text is required",
    ),
    (
        request(
            messages=[{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {"type": "x"}}]}]
        ),
        "messages.0.content.0.cache_control.type",
        "must be ephemeral",
    ),
    (
        request(
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]
        ),
        "messages.0.content.0.source.type",
        "'file' is not supported",
    ),
    (
        request(messages=[{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]),
        "messages.0.content.0",
        "tool_result blocks belong in user messages",
    ),
    (request(system=7), "system", "system must be a string or an array"),
    (request(temperature=1.5), "temperature", "temperature must be at most 1"),
    (request(temperature="0.5"), "temperature", "temperature must be a number"),
    (request(tools=[{"name": "f"}]), "tools.0.input_schema", "tools.0.input_schema is required"),
    (request(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type", "must be custom"),
    (request(tool_choice={"type": "tool"}), "tool_choice.name", "tool_choice.name is required"),
    (request(stop_sequences="END"), "stop_sequences", "stop_sequences must be an array"),
]


@pytest.mark.parametrize(("raw", "param", "fragment"), INVALID)
def test_invalid_requests_name_the_field(raw: Any, param: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_anthropic_request(raw)
    error = caught.value
    assert error.param == param
    assert fragment in error.message
    assert error.status == 400
    # Short and human: no pydantic dump, no documentation URL, one line.
    assert len(error.message) < 160
    assert "\n" not in error.message
    assert "pydantic" not in error.message.lower() and "http" not in error.message


# --- OpenAI-compatible upstreams never see Anthropic extras ----------------------------------------


def test_strip_cache_control_removes_every_marker_without_mutating() -> None:
    raw = request(
        system=[{"type": "text", "text": "S", "cache_control": EPHEMERAL}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Q", "cache_control": EPHEMERAL}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}, "cache_control": EPHEMERAL}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}],
            },
        ],
        tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
        cache_control=EPHEMERAL,
        top_k=4,
    )
    body, _ = parse_anthropic_request(raw)
    before = copy.deepcopy(body)
    assert len(cache_paths(body)) == 5
    stripped = strip_cache_control(body)
    assert body == before  # the router may still send the original to an Anthropic deployment
    assert cache_paths(stripped) == []
    assert "top_k" not in stripped
    tool_message = next(m for m in stripped["messages"] if m["role"] == "tool")
    assert tool_message == {"role": "tool", "tool_call_id": "t", "content": "Error: boom"}
    assert stripped["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "S"}]}
    assert strip_cache_control(body, drop_top_k=False)["top_k"] == 4


def test_strip_cache_control_is_free_when_nothing_to_strip() -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert strip_cache_control(body) is body


# --- response: OpenAI -> Anthropic ---------------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage
        or {
            "prompt_tokens": 120,
            "completion_tokens": 15,
            "total_tokens": 135,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }


def test_response_text_tools_and_usage() -> None:
    message = {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
        ],
    }
    out = openai_response_to_anthropic(completion(message, "tool_calls"), "claude-alias")
    assert out == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 15,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_stop_reasons(finish: str, stop_reason: str) -> None:
    out = openai_response_to_anthropic(completion({"role": "assistant", "content": "x"}, finish), "m")
    assert out["stop_reason"] == stop_reason


def test_cache_write_counts_survive_in_usage() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
        "cache_creation_input_tokens": 900,
    }
    out = openai_response_to_anthropic(completion({"role": "assistant", "content": "x"}, "stop", usage), "m")
    assert out["usage"]["input_tokens"] == 100
    assert out["usage"]["cache_creation_input_tokens"] == 900


def test_invalid_tool_arguments_are_kept_raw() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    out = openai_response_to_anthropic(completion({"role": "assistant", "tool_calls": [call]}, "tool_calls"), "m")
    assert out["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {"_raw_arguments": "{not json"}}]


# --- stream encoder -------------------------------------------------------------------------------


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
    assert parse_sse(error_event("upstream fell over", "overloaded_error")) == [
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
    payload = encoder.encode(chunk({"content": "partial"})) + error_event("upstream is unavailable", "overloaded_error")
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
    body = openai_response_to_anthropic(completion(message, "tool_calls"), "claude-alias")
    client = await serve(orjson.dumps(body), "application/json")
    final = await client.messages.create(**ARGS)
    assert isinstance(final, anthropic.types.Message)
    assert isinstance(final.content[0], anthropic.types.TextBlock) and final.content[0].text == "Sunny."
    assert isinstance(final.content[1], anthropic.types.ToolUseBlock) and final.content[1].input == {"n": 1}
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 20 and final.usage.output_tokens == 15
    assert final.usage.cache_read_input_tokens == 100


# --- round trip: Anthropic client -> OpenAI shape -> Anthropic upstream ----------------------------


ROUND_TRIP: dict[str, Any] = {
    "model": "claude-alias",
    "max_tokens": 512,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Long shared context.", "cache_control": EPHEMERAL},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    "cache_control": EPHEMERAL,
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
                {"type": "text", "text": "What is the weather?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "weather",
                    "input": {"city": "Paris", "units": ["c"]},
                    "cache_control": EPHEMERAL,
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C", "cache_control": EPHEMERAL},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_02", "name": "weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02",
                    "content": [{"type": "text", "text": "service down", "cache_control": EPHEMERAL}],
                    "is_error": True,
                }
            ],
        },
    ],
    "tools": [
        {
            "name": "weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": EPHEMERAL,
        },
        {"name": "clock", "input_schema": {"type": "object", "properties": {}}},
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["###"],
    "temperature": 0.3,
    "top_p": 0.8,
    "top_k": 20,
    "metadata": {"user_id": "user-42"},
    "cache_control": EPHEMERAL,
}


def test_round_trip_keeps_content_tools_and_every_cache_control() -> None:
    body, _ = parse_anthropic_request(copy.deepcopy(ROUND_TRIP))
    upstream = openai_to_anthropic_request(body, "claude-sonnet-real")
    assert upstream == {**ROUND_TRIP, "model": "claude-sonnet-real"}
    assert sorted(cache_paths(upstream)) == sorted(cache_paths(ROUND_TRIP))
    assert len(cache_paths(ROUND_TRIP)) == 9
