"""The Anthropic dialect: request validation and translation, complete answers, stripping for
OpenAI upstreams, and the round trip Anthropic client -> OpenAI shape -> Anthropic upstream.
(The stream encoder is tested in test_anthropic_stream.py.)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bastion.dialects.anthropic import (
    openai_response_to_anthropic,
    parse_anthropic_request,
)
from bastion.errors import InvalidRequest
from bastion.providers.anthropic_extras import strip_cache_control
from bastion.providers.anthropic_translate import openai_to_anthropic_request

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
    # Bastion's own field is parsed by the HTTP layer from the raw body, never carried in the translation.
    assert "bastion" not in body
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
