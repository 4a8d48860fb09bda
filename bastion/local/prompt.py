"""Prompt building for the embedded chat model: template rendering, safe tokenization, fitting the
context window, response-format grammars and stop sequences. Pure functions over a loaded
``llama_cpp.Llama``; the engine calls them from worker threads."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from bastion.errors import InvalidRequest

#: Used when a GGUF carries no chat template (SmolLM2's does; this is for other ``chat_model_path``s).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
#: The most of a JSON-schema converter's complaint a caller is shown.
SCHEMA_REASON_CHARS = 200
#: Stands in for each message's content while rendering the template (NUL never occurs in one).
_SENTINEL = re.compile("\x00(\\d+)\x00")

Messages = list[dict[str, str]]


def tokenize_chat(formatter: Any, llm: Any, messages: Messages) -> list[int]:
    """Render the chat template and tokenize it, keeping message text out of special tokens.

    The template is rendered with a stand-in for each content; the template's own text is then
    tokenized with special tokens parsed (``<|im_start|>`` is one token) and each content with
    them not parsed, so typed control tokens stay plain text. Tokenizing only reads the
    vocabulary, so it is safe beside a generation running on the same model.
    """
    stand_ins = [{"role": m["role"], "content": f"\x00{i}\x00"} for i, m in enumerate(messages)]
    pieces = _SENTINEL.split(formatter(messages=stand_ins).prompt)
    if [int(p) for p in pieces[1::2]] != list(range(len(messages))):
        # The template rewrote or reordered contents: fall back to llama-cpp's own behaviour.
        prompt = formatter(messages=messages).prompt
        return list(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
    tokens: list[int] = []
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            if piece or position == 0:
                tokens += llm.tokenize(piece.encode("utf-8"), add_bos=position == 0, special=True)
        else:
            content = messages[int(piece)]["content"]
            if content:
                tokens += llm.tokenize(content.encode("utf-8"), add_bos=False, special=False)
    return tokens


def fit_context(
    messages: Messages, tokenize: Callable[[Messages], list[int]], n_ctx: int, max_tokens: int
) -> tuple[list[int], int, int]:
    """Drop the oldest turns until the prompt and the answer fit ``n_ctx``.

    System messages and everything from the last user message on are kept. History is trimmed to
    leave room for ``max_tokens``, but never for more than half the window: a client asking for a
    huge ``max_tokens`` gets a shorter answer rather than losing its context. Returns the prompt
    tokens, the (possibly reduced) answer budget and how many messages were dropped.
    """
    if not messages:
        raise InvalidRequest("messages must contain at least one message", param="messages")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
    droppable = [i for i in range(last_user) if messages[i]["role"] != "system"]
    reserve = min(max_tokens, n_ctx // 2)
    cache: dict[int, list[int]] = {}

    def tokens_dropping(count: int) -> list[int]:
        if count not in cache:
            gone = set(droppable[:count])
            cache[count] = tokenize([m for i, m in enumerate(messages) if i not in gone])
        return cache[count]

    def fits(count: int) -> bool:
        return len(tokens_dropping(count)) + reserve <= n_ctx

    dropped = 0
    if not fits(0):
        low, high = 1, len(droppable)
        while low < high:  # fewest oldest messages to drop; the length shrinks as more are dropped
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        dropped = low if droppable and fits(low) else len(droppable)
    prompt = tokens_dropping(dropped)
    if len(prompt) >= n_ctx:
        raise InvalidRequest(
            f"the prompt needs {len(prompt)} tokens even after dropping older messages, but the local "
            f"model's context window is {n_ctx} tokens; shorten the last message or the system prompt",
            param="messages",
            code="context_length_exceeded",
        )
    return prompt, min(max_tokens, n_ctx - len(prompt)), dropped


def fit_raw_prompt(prompt: list[int], n_ctx: int, max_tokens: int) -> tuple[list[int], int]:
    """A raw text prompt (no turns to drop) and its answer budget, or a 400 if it cannot fit."""
    if len(prompt) >= n_ctx:
        raise InvalidRequest(
            f"the prompt needs {len(prompt)} tokens, but the local model's context window is {n_ctx} tokens",
            param="prompt",
            code="context_length_exceeded",
        )
    return prompt, min(max_tokens, n_ctx - len(prompt))


def grammar_for(response_format: dict[str, Any] | None) -> Any:
    """A llama.cpp grammar enforcing an OpenAI ``response_format`` (None for plain text).

    ``json_object`` constrains to any JSON value; ``json_schema`` to the given schema (converted
    by llama-cpp-python; unsupported schema features are a 400).
    """
    if not response_format:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    kind = response_format.get("type")
    schema: Any = None
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")  # llama-cpp-python's own extension
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object", param="response_format")
    else:
        raise InvalidRequest(f"unsupported response_format type {kind!r}", param="response_format")
    if schema is None:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:  # the converter raises assorted types on schemas it cannot express
        # Its reason helps the caller fix the schema; bounded, as a converter may quote all of it.
        reason = " ".join(str(exc).split())[:SCHEMA_REASON_CHARS]
        raise InvalidRequest(
            f"the local model cannot enforce this JSON schema: {reason}", param="response_format"
        ) from None


def find_stop(text: str, stops: list[str], start: int) -> int | None:
    """Where the earliest stop sequence begins at or after ``start``."""
    found = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(found) if found else None


def partial_stop(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop sequence: text that
    must be held back because the next token may complete the stop."""
    best = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:length]):
                best = length
                break
    return best
