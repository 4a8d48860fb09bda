"""Answers the gateway gives itself, without an upstream: a refusal, and any complete answer
replayed as a stream (for a stage that answered a streamed request)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from bastion.providers.base import ChatResponse, Usage

CONTENT_FILTER = "content_filter"


def refusal(model: str, message: str) -> ChatResponse:
    """A ``chat.completion`` whose only text is ``message``, finished by ``content_filter``; no
    tokens were spent on it."""
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": message, "refusal": None},
                "logprobs": None,
                "finish_reason": CONTENT_FILTER,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    return ChatResponse(body=body, usage=Usage(prompt_tokens=0, completion_tokens=0))


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
        delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls) if isinstance(call, dict)]
    elif delta.get("content") is None:
        delta["content"] = ""
    return delta


async def as_chunks(response: ChatResponse) -> AsyncGenerator[dict[str, Any], None]:
    """A complete answer as OpenAI chunks: per choice one delta with the whole message (tool calls,
    logprobs and other message fields included) and its finish (with the choice's other fields,
    such as the matched stop sequence), then the usage. Folding them back
    (``bastion.cache.answers.StreamAnswer``) gives the answer again."""
    body = response.body
    head: dict[str, Any] = {
        "id": body.get("id", f"chatcmpl-{uuid.uuid4().hex}"),
        "object": "chat.completion.chunk",
        "created": body.get("created", int(time.time())),
        "model": body.get("model", ""),
    }
    if body.get("system_fingerprint") is not None:
        head["system_fingerprint"] = body["system_fingerprint"]
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        opening = {"index": index, "delta": _delta(message), "logprobs": choice.get("logprobs"), "finish_reason": None}
        yield {**head, "choices": [opening]}
        extra = {name: value for name, value in choice.items() if name not in _NOT_FINISH}
        finish = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}
        yield {**head, "choices": [{**finish, **extra}]}
    usage = body.get("usage")
    if not isinstance(usage, dict) and response.usage is not None:
        usage = response.usage.to_openai()
    if isinstance(usage, dict):
        yield {**head, "choices": [], "usage": usage}
