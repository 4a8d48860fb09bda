"""Encoding a stream of OpenAI ``chat.completion.chunk`` dicts as Anthropic Messages SSE events.

The event grammar is Anthropic's: ``message_start``, then for each content block
``content_block_start`` / ``content_block_delta``* / ``content_block_stop``, then
``message_delta`` (stop reason and cumulative usage) and ``message_stop``. OpenAI streams report
usage only at the end, so ``message_start`` carries the input count Bastion knows up front (often
0) and ``message_delta`` carries the real counts; the Anthropic SDKs take the cumulative values
from ``message_delta`` when present.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.dialects.errors import anthropic_error
from bastion.dialects.extension import FIELD as EXTENSION_FIELD
from bastion.errors import BastionError
from bastion.providers.anthropic_common import (
    anthropic_stop_reason,
    anthropic_usage,
    matched_stop_sequence,
    new_tool_id,
)
from bastion.providers.base import Usage


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: BastionError) -> bytes:
    """An Anthropic ``error`` event, for failures after the stream has started."""
    return sse_event("error", anthropic_error(error))


class AnthropicStreamEncoder:
    """Turns OpenAI chunks into Anthropic SSE bytes, one chunk at a time, without buffering text.

    Only the first choice is encoded (the Anthropic dialect has no ``n``). Reasoning deltas
    (``reasoning_content``) are dropped: an Anthropic thinking block needs a signature Bastion
    cannot produce.
    """

    def __init__(
        self, model: str, message_id: str, input_tokens: int = 0, stop_sequences: list[str] | None = None
    ) -> None:
        self.model = model
        #: What the client asked to stop on, to name the one that ended the answer.
        self.stop_sequences = stop_sequences or []
        self._stop_sequence: str | None = None
        self.message_id = message_id
        self.input_tokens = input_tokens
        self._started = False
        self._finished = False
        self._next_index = 0
        #: Anthropic index of the open block and what it is ("text" or "tool_use").
        self._open: tuple[int, str] | None = None
        #: OpenAI tool-call index -> Anthropic content-block index.
        self._tools: dict[int, int] = {}
        self._last_tool: int | None = None
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        #: Bastion's own answer field (sources and citations), sent in ``message_delta``.
        self._extension: dict[str, Any] | None = None

    # -- public API

    def start(self) -> bytes:
        """``message_start`` (and a ``ping``), once; ``encode`` calls it on the first chunk."""
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return sse_event("message_start", {"type": "message_start", "message": message}) + sse_event(
            "ping", {"type": "ping"}
        )

    def encode(self, chunk: dict[str, Any]) -> bytes:
        """Events for one OpenAI chunk (possibly ``b""``, e.g. for a role-only or usage chunk)."""
        if self._finished:
            return b""
        out = [self.start()]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        extension = chunk.get(EXTENSION_FIELD)
        if isinstance(extension, dict):
            self._extension = extension
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._text(text))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._stop_sequence = matched_stop_sequence(choice, self.stop_sequences)
        return b"".join(out)

    def finish(self, usage: Usage | None = None) -> bytes:
        """Close the open block and end the message: ``message_delta`` then ``message_stop``.

        ``usage`` wins over usage seen in chunks; a ``usage`` without cache-write counts (not
        the provider's own) still takes them from the chunks."""
        if self._finished:
            return b""
        out = [self.start(), self._close()]
        self._finished = True
        counts = anthropic_usage(self._usage)
        if usage is not None:
            created = counts["cache_creation_input_tokens"]
            counts = anthropic_usage(usage.to_openai())
            if not usage.cache_creation_tokens and created:
                counts["cache_creation_input_tokens"] = min(created, max(0, usage.prompt_tokens - usage.cached_tokens))
                counts["input_tokens"] = max(0, counts["input_tokens"] - counts["cache_creation_input_tokens"])
        elif self._usage is None:
            # Nothing known: report only what the SDKs require, so the start-time count survives.
            counts = {"output_tokens": 0}
        stop_reason = anthropic_stop_reason(self._finish_reason, self._stop_sequence)
        if stop_reason == "end_turn" and self._tools:
            stop_reason = "tool_use"  # some servers finish tool calls with "stop"
        stop_sequence = self._stop_sequence if stop_reason == "stop_sequence" else None
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": counts,
        }
        if self._extension is not None:
            delta[EXTENSION_FIELD] = self._extension  # an extra key the SDKs ignore (or keep)
        out.append(sse_event("message_delta", delta))
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    # -- blocks

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        index = self._next_index
        self._next_index += 1
        self._open = (index, kind)
        return sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, _ = self._open
        self._open = None
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _text(self, text: str) -> bytes:
        prefix = b""
        if self._open is None or self._open[1] != "text":
            prefix = self._close() + self._open_block("text", {"type": "text", "text": ""})
        assert self._open is not None
        return prefix + self._delta(self._open[0], {"type": "text_delta", "text": text})

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        function = call.get("function") or {}
        position = call.get("index")
        if not isinstance(position, int):
            # Some servers omit the index: a new id starts a new call, otherwise it continues one.
            new = call.get("id") or self._last_tool is None
            position = len(self._tools) if new or self._last_tool is None else self._last_tool
        out = b""
        if position not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or new_tool_id(),
                "name": function.get("name") or "",
                "input": {},
            }
            out = self._close() + self._open_block("tool_use", block)
            assert self._open is not None
            self._tools[position] = self._open[0]
        self._last_tool = position
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # OpenAI servers send a call's arguments contiguously; should one continue an earlier
            # call, its deltas still name that call's block index, which the SDKs accumulate.
            out += self._delta(self._tools[position], {"type": "input_json_delta", "partial_json": arguments})
        return out
