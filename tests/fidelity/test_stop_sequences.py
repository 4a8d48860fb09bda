"""Anthropic ``stop_sequences``: an answer that ended on one says ``stop_reason: stop_sequence``
and names it, complete or streamed, from every upstream that says which one matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import orjson

from tests.fidelity.support import (
    CHAT,
    CHAT_UPSTREAM,
    CLAUDE,
    CLAUDE_UPSTREAM,
    USER,
    anthropic_events,
    fidelity_gateway,
)
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.openai_spec import validate

STOPS = ["END", "\n\nHuman:"]
REQUEST: dict[str, Any] = {"max_tokens": 50, "messages": USER, "stop_sequences": STOPS}


def _sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    out = b""
    for name, payload in events:
        out += (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + orjson.dumps(payload) + b"\n\n"
    return out


def _anthropic_answer(stop: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE_UPSTREAM,
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": stop,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }


def _anthropic_stream(stop: str) -> bytes:
    start = {**_anthropic_answer(stop), "content": [], "stop_reason": None, "stop_sequence": None}
    return _sse(
        [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "stop_sequence", "stop_sequence": stop},
                    "usage": {"output_tokens": 1},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def _vllm_answer(stop: str | None) -> dict[str, Any]:
    """vLLM's OpenAI server names the matched stop string in ``choices[].stop_reason``."""
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": CHAT_UPSTREAM,
        "choices": [{**choice, "stop_reason": stop}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _vllm_stream(stop: str) -> bytes:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": CHAT_UPSTREAM}
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": stop}]},
        {**head, "choices": [], "usage": usage},
    ]
    return _sse([(None, chunk) for chunk in chunks]) + b"data: [DONE]\n\n"


def _stream_stop(events: list[dict[str, Any]]) -> dict[str, Any]:
    (delta,) = [e["delta"] for e in events if e["type"] == "message_delta"]
    return dict(delta)


async def test_anthropic_upstream_stop_sequence_is_reported(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.script(
        CLAUDE_UPSTREAM,
        [
            Behaviour.error_body(200, orjson.dumps(_anthropic_answer("END"))),
            Behaviour.error_body(200, _anthropic_stream("\n\nHuman:"), "text/event-stream"),
            Behaviour.error_body(200, orjson.dumps(_anthropic_answer("END"))),
        ],
    )
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CLAUDE})
        message = anthropic.types.Message.model_validate(response.json())
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")

        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CLAUDE, "stream": True})
        delta = _stream_stop(anthropic_events(response.content))
        assert delta == {"stop_reason": "stop_sequence", "stop_sequence": "\n\nHuman:"}

        # The OpenAI dialect says "stop" and keeps Bastion's internal key to itself.
        response = await env.client.post(
            "/v1/chat/completions", json={"model": CLAUDE, "messages": USER, "stop": STOPS}
        )
        body = response.json()
        validate("CreateChatCompletionResponse", body)
        assert body["choices"][0]["finish_reason"] == "stop" and "stop_sequence" not in body["choices"][0]


async def test_vllm_stop_reason_is_reported(tmp_path: Path, db_path: Path, fake: FakeUpstream) -> None:
    fake.script(
        CHAT_UPSTREAM,
        [
            Behaviour.error_body(200, orjson.dumps(_vllm_answer("END"))),
            Behaviour.error_body(200, _vllm_stream("END"), "text/event-stream"),
            # A stop_reason that is not one of the requested sequences (an EOS token id) is no match.
            Behaviour.error_body(200, orjson.dumps(_vllm_answer(None))),
        ],
    )
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CHAT})
        message = anthropic.types.Message.model_validate(response.json())
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")

        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CHAT, "stream": True})
        delta = _stream_stop(anthropic_events(response.content))
        assert delta == {"stop_reason": "stop_sequence", "stop_sequence": "END"}

        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CHAT})
        message = anthropic.types.Message.model_validate(response.json())
        assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


async def test_plain_openai_upstream_cannot_say_which_stop_matched(
    tmp_path: Path, db_path: Path, fake: FakeUpstream
) -> None:
    async with fidelity_gateway(tmp_path, fake) as env:
        response = await env.client.post("/v1/messages", json={**REQUEST, "model": CHAT})
    message = anthropic.types.Message.model_validate(response.json())
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
