"""Pre-flight estimates: the tokens a request will send and may receive, and what that can cost.

Prompt tokens come from ``bastion.usage.tokenizer`` (cached per text, so repeated system prompts
cost a dict lookup); if it cannot be imported, one token per four characters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from bastion.spend.pricing import Price

CountMessages = Callable[[Iterable[dict[str, Any]]], int]
CountText = Callable[[str], int]


def _heuristic_text(text: str) -> int:
    return math.ceil(len(text) / 4)


def _heuristic_messages(messages: Iterable[dict[str, Any]]) -> int:
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            text = "".join(str(part.get("text") or "") if isinstance(part, dict) else str(part) for part in content)
        else:
            text = "" if content is None else str(content)
        total += 3 + _heuristic_text(text)
    return total


def _load_tokenizer() -> tuple[CountMessages, CountText, Callable[[Any], int] | None]:
    try:
        from bastion.usage.tokenizer import count_messages, count_text, count_tools
    except Exception:  # the tokenizer module or its native library is unavailable
        return _heuristic_messages, _heuristic_text, None
    return count_messages, count_text, count_tools


count_messages, count_text, _count_tools = _load_tokenizer()


def prompt_tokens(body: dict[str, Any], endpoint: str = "chat") -> int:
    """Tokens the request sends: chat messages (and tool definitions), or embedding inputs."""
    if endpoint == "embeddings":
        inputs = body.get("input")
        if isinstance(inputs, str):
            return count_text(inputs)
        if isinstance(inputs, list):
            return sum(count_text(item) if isinstance(item, str) else len(item) for item in inputs)
        return 0
    messages = body.get("messages")
    total = count_messages(messages) if isinstance(messages, list) else 0
    tools = body.get("tools")
    if tools and _count_tools is not None:
        total += _count_tools(tools)
    return total


def completion_tokens(body: dict[str, Any], price: Price, default: int, endpoint: str = "chat") -> int:
    """The most the answer may cost: max_completion_tokens, else max_tokens, else the model's
    maximum output from the price table, else ``default``."""
    if endpoint == "embeddings":
        return 0
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return price.max_output_tokens or default


def answer_tokens(output_text: Iterable[str]) -> int:
    """Tokens of an answer's text (for a stream cut off before the provider reported usage)."""
    text = "".join(output_text)
    return count_text(text) if text else 0
