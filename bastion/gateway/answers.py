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


async def as_chunks(response: ChatResponse) -> AsyncGenerator[dict[str, Any], None]:
    """A complete answer as OpenAI chunks: per choice a role-and-content delta (tool calls
    included) and its finish reason, then the usage."""
    body = response.body
    head = {
        "id": body.get("id", f"chatcmpl-{uuid.uuid4().hex}"),
        "object": "chat.completion.chunk",
        "created": body.get("created", int(time.time())),
        "model": body.get("model", ""),
    }
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        yield {**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]}
        end = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}
        yield {**head, "choices": [end]}
    if body.get("usage") is not None:
        yield {**head, "choices": [], "usage": body["usage"]}
