"""Token usage estimated with our tokenizer, for answers whose provider reported none (or was
stopped before it could)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bastion.providers.base import Usage
from bastion.usage.tokenizer import count_messages, count_text, count_tools


def estimate_usage(body: dict[str, Any], answer: Iterable[str]) -> Usage:
    """Prompt tokens of a chat request body (messages and tool definitions) and answer tokens of
    the answer's text pieces."""
    prompt = count_messages(body.get("messages") or [])
    if body.get("tools"):
        prompt += count_tools(body["tools"])
    completion = count_text("".join(answer))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)
