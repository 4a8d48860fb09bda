"""Pre-flight estimates: the tokens a request will send and may receive, and what that can cost.

The pre-flight runs on every request, so prompt tokens are estimated from the text's UTF-8 size
(one token per three bytes) rather than by running a BPE tokenizer, which costs about 0.3 ms per
KB here. For English prose and code that is an over-estimate of 10-40% (GPT-style vocabularies
average about four characters per token), for CJK text about right (three bytes, one token), so a
budget errs on the side of refusing a little early, never of overshooting. Exact counts come from
the provider's usage afterwards; ``bastion.usage.tokenizer`` is used only when a provider reports
none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from bastion.spend.pricing import Price

CountMessages = Callable[[Iterable[dict[str, Any]]], int]
CountText = Callable[[str], int]


BYTES_PER_TOKEN = 3


def _heuristic_text(text: str) -> int:
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


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


def _heuristic_tools(tools: Any) -> int:
    try:
        size = len(orjson.dumps(tools))
    except TypeError:
        size = len(str(tools))
    return 12 + math.ceil(size / BYTES_PER_TOKEN)


# Exact-ish counting only where it is off the hot path (answers of streams cut short).
_exact_messages, _exact_text, _ = _load_tokenizer()
_count_tools = _heuristic_tools
count_messages: CountMessages = _heuristic_messages
count_text: CountText = _heuristic_text


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
    if tools:
        total += _count_tools(tools)
    return total


def _marks(value: Any) -> tuple[bool, bool]:
    control = value.get("cache_control") if isinstance(value, dict) else None
    if not isinstance(control, dict):
        return False, False
    return True, control.get("ttl") == "1h"


def cache_breakpoints(body: dict[str, Any]) -> tuple[bool, bool]:
    """Whether a chat body marks prompt-cache breakpoints (``cache_control`` on the body, a
    message, a content part or a tool), and whether one asks for the 1-hour TTL. Such a prompt may
    be written to the cache, which costs more than input (1.25x, 2x for the hour), so the
    pre-flight prices it as a write: the most it can cost."""
    marked, hour = _marks(body)
    candidates: list[Any] = list(body.get("tools") or ())
    for message in body.get("messages") or ():
        candidates.append(message)
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            candidates.extend(content)
    for candidate in candidates:
        found, long = _marks(candidate)
        marked, hour = marked or found, hour or long
        if hour:
            break
    return marked, hour


def completion_tokens(body: dict[str, Any], price: Price, default: int, endpoint: str = "chat") -> int:
    """The most the answer may cost: max_completion_tokens, else max_tokens, else the model's
    maximum output from the price table, else ``default``; times ``n``, the choices asked for
    (each is a completion of its own)."""
    if endpoint == "embeddings":
        return 0
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value * choices
    return (price.max_output_tokens or default) * choices


def answer_tokens(output_text: Iterable[str]) -> int:
    """Tokens of an answer's text (for a stream cut off before the provider reported usage)."""
    text = "".join(output_text)
    return _exact_text(text) if text else 0
