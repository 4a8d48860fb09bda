"""What the fake upstream answers, in each dialect's wire format: completions, messages, their
event streams, tool calls, error bodies and events, and the values tests compare against
(``answer_text``, ``fake_vector``, ``tool_answer``, ``fake_token_count``).

The server and its scripted behaviours are in ``fake_upstream.py``; this module is pure data shaping.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

Dialect = Literal["openai", "anthropic"]


@dataclass(slots=True)
class Received:
    """One request as the fake saw it."""

    model: str
    dialect: Dialect
    path: str
    body: Any
    stream: bool
    behaviour: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    disconnected_at: float | None = None
    finished_at: float | None = None
    #: The usage the answer reports instead of the default (the ``prompt_cache`` behaviour's:
    #: OpenAI usage, or Anthropic's input counts, to which the answer adds ``output_tokens``).
    usage: dict[str, Any] | None = None


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic small vector for ``text`` (tests can recompute it)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128.0, 6) for b in digest[:dims]]


def answer_text(model: str) -> str:
    """The text the fake answers ``ok`` requests for ``model`` with."""
    return f"Hello from {model}."


def tool_answer(result: str) -> str:
    """What the ``tools`` behaviour answers once it has a tool's result."""
    return f"The tool said: {result}"


def tool_call_for(body: Any) -> dict[str, Any] | None:
    """The call the ``tools`` behaviour makes (None: it answers in text): the first tool, with
    arguments filled from its JSON schema, unless the last message is already a tool result."""
    if not isinstance(body, dict) or not body.get("tools"):
        return None
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return None
    function = body["tools"][0].get("function") or {}
    properties = (function.get("parameters") or {}).get("properties") or {}
    arguments = {name: 1 if spec.get("type") in ("integer", "number") else "test" for name, spec in properties.items()}
    return {
        "id": "call_" + uuid.uuid4().hex[:12],
        "type": "function",
        "function": {"name": function.get("name", ""), "arguments": orjson.dumps(arguments).decode()},
    }


def openai_tool_call_completion(entry: Received, call: dict[str, Any]) -> dict[str, Any]:
    body = openai_completion(entry, [], with_usage=True)
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def openai_tool_call_events(entry: Received, call: dict[str, Any]) -> Iterable[bytes]:
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": entry.model, "choices": choices}
        return b"data: " + orjson.dumps({**payload, **extra}) + b"\n\n"

    arguments = call["function"]["arguments"]
    half = len(arguments) // 2
    head = {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": ""},
    }
    yield chunk(
        [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [head]}, "finish_reason": None}]
    )
    for piece in (arguments[:half], arguments[half:]):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
    options = entry.body.get("stream_options") if isinstance(entry.body, dict) else None
    if isinstance(options, dict) and options.get("include_usage"):
        prompt_tokens = _prompt_tokens(entry)
        yield chunk(
            [], usage={"prompt_tokens": prompt_tokens, "completion_tokens": 3, "total_tokens": prompt_tokens + 3}
        )
    yield b"data: [DONE]\n\n"


def fake_token_count(body: dict[str, Any]) -> int:
    """What the fake's token counter answers: recognisably not an estimate of Bastion's."""
    return 1000 + 10 * len(body.get("messages") or []) + 100 * len(body.get("tools") or []) + bool(body.get("system"))


def split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


def _prompt_tokens(entry: Received) -> int:
    messages = entry.body.get("messages") if isinstance(entry.body, dict) else None
    return 3 + 4 * len(messages or [])


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json")


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_response(dialect: Dialect, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    if dialect == "anthropic":
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        kind = "invalid_request_error" if status < 500 else "server_error"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return json_response(payload, status=status, headers=headers)


def presented_key(entry: Received) -> str:
    """The credential a request carried: the bearer value, or Anthropic's ``x-api-key``."""
    headers = {name.lower(): value for name, value in entry.headers.items()}
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def error_event(dialect: Dialect, message: str) -> bytes:
    """An error reported inside an event stream, after a 200 and some content."""
    if dialect == "anthropic":
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "server_error"}}) + b"\n\n"


def openai_completion(entry: Received, parts: list[str], with_usage: bool) -> dict[str, Any]:
    completion_tokens = len(parts)
    prompt_tokens = _prompt_tokens(entry)
    body: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": entry.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    if entry.usage is not None:
        body["usage"] = entry.usage
    elif with_usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def openai_events(entry: Received, parts: list[str], with_usage: bool) -> Iterable[tuple[str, bytes]]:
    """(kind, bytes) pairs: kind is "content" for the events that carry answer text."""
    cid = "chatcmpl-" + uuid.uuid4().hex[:12]
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        payload = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": entry.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    yield "meta", chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for part in parts:
        yield "content", chunk([{"index": 0, "delta": {"content": part}, "finish_reason": None}])
    yield "meta", chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    options = entry.body.get("stream_options") if isinstance(entry.body, dict) else None
    if with_usage and isinstance(options, dict) and options.get("include_usage"):
        prompt_tokens = _prompt_tokens(entry)
        usage = entry.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(parts),
            "total_tokens": prompt_tokens + len(parts),
        }
        yield "meta", chunk([], usage=usage)
    yield "meta", b"data: [DONE]\n\n"


def anthropic_message(entry: Received, parts: list[str], with_usage: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:12],
        "type": "message",
        "role": "assistant",
        "model": entry.model,
        "content": [{"type": "text", "text": "".join(parts)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**entry.usage, "output_tokens": len(parts)}
        if entry.usage is not None
        else {
            "input_tokens": _prompt_tokens(entry) if with_usage else 0,
            "output_tokens": len(parts) if with_usage else 0,
        },
    }


def anthropic_events(entry: Received, parts: list[str], with_usage: bool) -> Iterable[tuple[str, bytes]]:
    def event(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    message = {**anthropic_message(entry, [], with_usage), "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": _prompt_tokens(entry) if with_usage else 0, "output_tokens": 1}
    if entry.usage is not None:
        message["usage"] = {**entry.usage, "output_tokens": 1}
    yield "meta", event("message_start", {"type": "message_start", "message": message})
    yield (
        "meta",
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    )
    yield "meta", event("ping", {"type": "ping"})
    for part in parts:
        yield (
            "content",
            event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
            ),
        )
    yield "meta", event("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield (
        "meta",
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                # Anthropic's message_delta repeats the input counts (cumulative usage).
                "usage": {**(entry.usage or {}), "output_tokens": len(parts) if with_usage else 0},
            },
        ),
    )
    yield "meta", event("message_stop", {"type": "message_stop"})
