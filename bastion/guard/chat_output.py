"""Guarding chat answers in the OpenAI chat-completions shape, complete and streamed.

Complete answers (``guard_choice``): each choice's text and tool-call arguments are scanned with
an ``OutputGuard`` that knows the system prompt and the canary planted in it.

* ``block`` (a leak, by default) -> the answer is withheld: the content replaced by
  ``WITHHELD_MESSAGE``, no tool calls, ``finish_reason: "content_filter"`` (Anthropic renders
  ``stop_reason: "refusal"``); usage is kept, since the tokens were spent.
* ``redact`` -> PII and secrets replaced by typed placeholders (``[EMAIL_ADDRESS]``).
* ``flag`` -> unchanged; recorded.

Streams (``GuardedStream``): each choice's text goes through a ``StreamingOutputGuard`` and only
the text it returns as safe is forwarded, re-chunked; the rest is held back until it is known to
be safe. On a block no more text is forwarded, the upstream is closed (which cancels generation),
and a last chunk carries ``WITHHELD_MESSAGE`` with ``finish_reason: "content_filter"``, followed
by the usage (estimated when the upstream was stopped before reporting it). Tool-call deltas pass
through as they come (a client cannot use half a call that is held, and arguments are JSON, where
placeholders would break the call); their arguments are scanned when the choice ends, and a
finding is recorded (a block also sets ``finish_reason: "content_filter"``), but text already sent
cannot be recalled.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Protocol

import bastion.guard.offload as offload
from bastion.guard.engine import OutputGuard
from bastion.guard.models import GuardResult
from bastion.guard.run_hold import RunHoldingStreamGuard
from bastion.guard.service import count_verdicts
from bastion.guard.state import CONTENT_FILTER, WITHHELD_MESSAGE, GuardState, combine
from bastion.text_parts import TextParts

Chunks = AsyncGenerator[dict[str, Any], None]


class UsageReport(Protocol):
    def to_openai(self) -> dict[str, Any]: ...


#: Usage of the request from the answer's text pieces (prompt counted from the request body).
EstimateUsage = Callable[[list[str]], UsageReport]

_TEXT_PART_TYPES = frozenset({"text", "output_text"})


def guard_choice(guard: OutputGuard, choice: dict[str, Any], results: list[GuardResult]) -> None:
    """Scan one choice of a complete answer and apply the verdict to it in place."""
    message: dict[str, Any] = choice["message"]
    scans: list[GuardResult] = []
    content = message.get("content")
    new_content: Any = content
    if isinstance(content, str) and content:
        scan = guard.scan_text(content)
        scans.append(scan)
        new_content = scan.text
    elif isinstance(content, list):  # content parts, as some servers answer
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
                scan = guard.scan_text(part["text"])
                scans.append(scan)
                part = {**part, "text": scan.text} if scan.text != part["text"] else part
            parts.append(part)
        new_content = parts
    calls = message.get("tool_calls")
    new_calls: list[Any] = []
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if isinstance(function, Mapping) and isinstance(arguments, str) and arguments:
            scan = guard.scan_text(arguments)
            scans.append(scan)
            if scan.text != arguments:
                call = {**call, "function": {**function, "arguments": scan.text}}
        new_calls.append(call)
    results.extend(scans)
    if any(scan.blocked for scan in scans):
        # Withhold everything: a partial answer could still carry the leaked part's neighbours.
        choice["message"] = {"role": message.get("role") or "assistant", "content": WITHHELD_MESSAGE}
        choice["finish_reason"] = CONTENT_FILTER
        return
    if any(scan.action == "redact" for scan in scans):
        message["content"] = new_content
        if calls:
            message["tool_calls"] = new_calls


class GuardedStream:
    """One guarded stream: a ``StreamingOutputGuard`` per choice, tool-call arguments collected."""

    def __init__(
        self,
        state: GuardState,
        guard: OutputGuard,
        chunks: Chunks,
        *,
        model: str,
        estimate_usage: EstimateUsage,
        usage_was_estimated: Callable[[], None] = lambda: None,
        batch_chars: int = 64,
    ) -> None:
        self.model = model
        self.estimate_usage = estimate_usage
        #: Called once the consumer has taken our own usage estimate (the upstream was stopped early):
        #: whoever read that chunk's usage as a provider report learns it is an estimate.
        self.usage_was_estimated = usage_was_estimated
        self.batch_chars = batch_chars
        self.state = state
        self.guard = guard
        self.chunks = chunks
        self.streams: dict[int, RunHoldingStreamGuard] = {}
        self.released: dict[int, bool] = {}  # whether any text of the choice went out
        self.tool_arguments: dict[int, list[str]] = {}
        self.tool_results: list[GuardResult] = []
        self.finished: set[int] = set()  # choices whose guard has run its final checks
        self.received: list[str] = TextParts()  # raw text, for the usage estimate if we stop the upstream
        self.blocked = False
        self.upstream_done = False  # a finish_reason arrived: the upstream has stopped generating
        self.usage_seen = False
        self.last: dict[str, Any] = {}

    def _stream(self, index: int) -> RunHoldingStreamGuard:
        stream = self.streams.get(index)
        if stream is None:
            stream = self.streams[index] = RunHoldingStreamGuard(self.guard, min_batch_chars=self.batch_chars)
            self.released[index] = False
        return stream

    async def run(self) -> Chunks:
        chunks = self.chunks
        streams, received = self.streams, self.received
        try:
            try:
                async for chunk in chunks:
                    # Short path for the chunk of nearly every token (one choice, carrying only text):
                    # it runs once per token and most tokens are held back, so it does the least.
                    choices = chunk.get("choices")
                    if choices and len(choices) == 1 and not chunk.get("usage"):
                        choice = choices[0]
                        delta = choice.get("delta")
                        if delta and len(delta) == 1 and not choice.get("finish_reason"):
                            text = delta.get("content")
                            if text and type(text) is str:
                                index = choice.get("index") or 0
                                stream = streams.get(index) or self._stream(index)
                                received.append(text)
                                safe = stream.feed(text)
                                if stream.blocked:
                                    self.blocked = True
                                    break
                                if safe:
                                    self.released[index] = True
                                    yield {**chunk, "choices": [{**choice, "delta": {"content": safe}}]}
                                continue
                    self.last = chunk
                    if chunk.get("usage"):
                        self.usage_seen = True
                    out = await self._filter(chunk)
                    if self.blocked:
                        break
                    if out is not None:
                        yield out
            except Exception:
                # The upstream failed mid-stream: what is held back and passes the final checks still
                # goes out before the error, so the client loses no checked text to the guard.
                tail = None if self.blocked else await self._finish_open_choices()
                if tail is not None and not self.blocked:
                    yield tail
                raise
            if not self.blocked:
                tail = await self._finish_open_choices()
                if tail is not None and not self.blocked:
                    yield tail
            if self.blocked:
                if not self.upstream_done:
                    # Stop the upstream now: closing the stream closes the connection (remote) or
                    # stops the worker between tokens (local model), so nothing more is generated.
                    await chunks.aclose()
                yield self._withheld_chunk()
                if self.upstream_done:
                    async for chunk in chunks:  # only the usage report is still to come
                        if chunk.get("usage"):
                            self.usage_seen = True
                            yield {**chunk, "choices": []}
                if not self.usage_seen:
                    yield self._estimated_usage_chunk()
                    self.usage_was_estimated()
        finally:
            await chunks.aclose()
            self._record()

    async def _filter(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk with its text replaced by what the guard releases (None: nothing to send)."""
        choices = chunk.get("choices")
        if not choices:
            return chunk  # the usage report, or an empty keep-alive
        return await self._filter_choices(chunk, choices)

    async def _filter_choices(self, chunk: dict[str, Any], choices: list[Any]) -> dict[str, Any] | None:
        """``_filter`` for any chunk: several choices, roles, tool calls, finish reasons, usage."""
        out_choices: list[dict[str, Any]] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index") or 0
            stream = self._stream(index)
            delta = choice.get("delta") or {}
            finish = choice.get("finish_reason")
            text = delta.get("content")
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, Mapping) else None
                arguments = function.get("arguments") if isinstance(function, Mapping) else None
                if isinstance(arguments, str) and arguments:
                    self.tool_arguments.setdefault(index, []).append(arguments)
            if isinstance(text, str) and text:
                self.received.append(text)
                safe = stream.feed(text)
                if stream.blocked:
                    self.blocked = True
                    return None
                delta = {**delta, "content": safe} if safe else {k: v for k, v in delta.items() if k != "content"}
            if finish:
                self.upstream_done = True
                self.finished.add(index)
                rest = stream.finish()
                if stream.blocked:
                    self.blocked = True
                    return None
                if rest:
                    delta = {**delta, "content": (delta.get("content") or "") + rest}
                if await self._scan_tool_arguments(index):
                    finish = CONTENT_FILTER
            if delta.get("content"):
                self.released[index] = True
            if delta or finish or choice.get("logprobs"):
                out_choices.append({**choice, "delta": delta, "finish_reason": finish})
        if not out_choices:
            return {**chunk, "choices": []} if chunk.get("usage") else None
        return {**chunk, "choices": out_choices}

    async def _finish_open_choices(self) -> dict[str, Any] | None:
        """The upstream ended without a finish_reason for some choice: flush what is safe."""
        choices = []
        for index, stream in self.streams.items():
            if index in self.finished:
                continue
            self.finished.add(index)
            rest = stream.finish()
            if stream.blocked:
                self.blocked = True
                return None
            await self._scan_tool_arguments(index)
            if rest:
                self.released[index] = True
                choices.append({"index": index, "delta": {"content": rest}, "finish_reason": None})
        return self._chunk(choices) if choices else None

    async def _scan_tool_arguments(self, index: int) -> bool:
        """Scan the choice's tool-call arguments (already sent); True if the guard would block them."""
        pieces = self.tool_arguments.pop(index, None)
        if not pieces:
            return False
        result = await offload.scan_text(self.guard, "".join(pieces))
        self.tool_results.append(result)
        return result.blocked

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        last = self.last
        return {
            "id": last.get("id"),
            "object": "chat.completion.chunk",
            "created": last.get("created") or int(time.time()),
            "model": last.get("model") or self.model,
            "choices": choices,
            **extra,
        }

    def _withheld_chunk(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.streams) or [0]:
            notice = ("\n\n" if self.released.get(index) else "") + WITHHELD_MESSAGE
            choices.append({"index": index, "delta": {"content": notice}, "finish_reason": CONTENT_FILTER})
        return self._chunk(choices)

    def _estimated_usage_chunk(self) -> dict[str, Any]:
        answer = [*self.received, *("".join(pieces) for pieces in self.tool_arguments.values())]
        return self._chunk([], usage=self.estimate_usage(answer).to_openai())

    def _record(self) -> None:
        """The stream's verdicts into the guard state (read by the ledger) and the metrics."""
        results = [stream.result for stream in self.streams.values()]
        results.extend(self.tool_results)
        output = combine(results)
        if output is not None and self.blocked and output.action != "block":
            # A stream that was stopped is a block whatever the per-scanner modes said.
            output.action = "block"
        self.state.output = output
        count_verdicts("output", output)
