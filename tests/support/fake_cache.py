"""The fake upstream's prompt cache (behaviour ``prompt_cache``): the usage a real upstream reports
when it caches prompt prefixes, with tokens counted as whitespace-separated words so tests can
build exact counts ("w " * 10_000 is 10,000 tokens).

- Anthropic: the prefix is every block (tools, then system, then messages, in order) up to and
  including the last one marked ``cache_control``; the first request with a prefix writes it
  (``cache_creation_input_tokens``, by TTL in ``cache_creation``), later ones read it
  (``cache_read_input_tokens``); ``input_tokens`` is what follows the prefix.
- OpenAI: automatic caching of everything before the last message: a prefix seen before is
  reported as ``prompt_tokens_details.cached_tokens``.

Entries never expire (the tests' requests come seconds apart); ``reset`` forgets them.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson


def words(value: Any) -> int:
    """Tokens of a block: the words of its text (strings, ``text`` fields, tool descriptions)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(words(item) for item in value)
    if isinstance(value, dict):
        return sum(words(value.get(key)) for key in ("text", "content", "description", "name") if key in value)
    return 0


def _anthropic_blocks(body: dict[str, Any]) -> list[Any]:
    """Anthropic's prefix order: tools, system, then each message's blocks."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    blocks += system if isinstance(system, list) else [system] if system else []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            blocks += [{**block, "role": message.get("role")} for block in content]
        else:
            blocks.append({"role": message.get("role"), "text": content})
    return blocks


class PromptCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[bytes] = set()

    def reset(self) -> None:
        with self._lock:
            self._prefixes.clear()

    def _seen(self, key: bytes) -> bool:
        """Whether ``key`` was cached before; caches it now."""
        with self._lock:
            if key in self._prefixes:
                return True
            self._prefixes.add(key)
            return False

    def anthropic_usage(self, body: dict[str, Any]) -> dict[str, Any]:
        """Anthropic's input usage (``output_tokens`` is added by the answer)."""
        blocks = _anthropic_blocks(body)
        total = sum(words(block) for block in blocks)
        marks = [i for i, block in enumerate(blocks) if isinstance(block, dict) and block.get("cache_control")]
        created = read = 0
        ttl = "5m"
        if marks:
            prefix = blocks[: marks[-1] + 1]
            ttl = str((blocks[marks[-1]]["cache_control"] or {}).get("ttl") or "5m")
            tokens = sum(words(block) for block in prefix)
            key = hashlib.sha256(orjson.dumps([body.get("model"), prefix], option=orjson.OPT_SORT_KEYS)).digest()
            if self._seen(key):
                read = tokens
            else:
                created = tokens
        return {
            "input_tokens": total - created - read,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": created if ttl != "1h" else 0,
                "ephemeral_1h_input_tokens": created if ttl == "1h" else 0,
            },
        }

    def openai_usage(self, body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
        messages = list(body.get("messages") or [])
        total = sum(words(message) for message in messages)
        prefix = messages[:-1]
        cached = 0
        if prefix:
            key = hashlib.sha256(orjson.dumps([body.get("model"), prefix], option=orjson.OPT_SORT_KEYS)).digest()
            if self._seen(key):
                cached = sum(words(message) for message in prefix)
        return {
            "prompt_tokens": total,
            "completion_tokens": completion_tokens,
            "total_tokens": total + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
