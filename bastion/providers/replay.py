"""A complete answer as a stream: for a streamed request that a stage answered without an upstream
call (a cache hit). The chunks are what a provider would have streamed for the answer (per choice
one delta with the whole message, then its finish), ending with the usage chunk, so the stages'
stream hooks and the dialects' encoders treat them like any other stream."""

from __future__ import annotations

from typing import Any

from bastion.providers.base import ChatResponse, ChunkStream

#: Message fields that are not text deltas (``tool_calls`` is rebuilt with indexes).
_NOT_DELTA = frozenset({"tool_calls", "role"})
#: Choice fields the finishing chunk does not carry over.
_NOT_FINISH = frozenset({"index", "message", "logprobs", "finish_reason"})


def _delta(message: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": message.get("role") or "assistant"}
    for name, value in message.items():
        if name not in _NOT_DELTA and value is not None:
            delta[name] = value
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls) if isinstance(call, dict)]
    return delta


async def response_chunks(response: ChatResponse) -> ChunkStream:
    body = response.body
    head: dict[str, Any] = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    if body.get("system_fingerprint") is not None:
        head["system_fingerprint"] = body["system_fingerprint"]
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        opening: dict[str, Any] = {"index": index, "delta": _delta(message), "finish_reason": None}
        if choice.get("logprobs") is not None:
            opening["logprobs"] = choice["logprobs"]
        yield {**head, "choices": [opening]}
        extra = {name: value for name, value in choice.items() if name not in _NOT_FINISH}
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason"), **extra}
        yield {**head, "choices": [finish]}
    usage = body.get("usage")
    if not isinstance(usage, dict) and response.usage is not None:
        usage = response.usage.to_openai()
    if isinstance(usage, dict):
        yield {**head, "choices": [], "usage": usage}
