"""Cached answers: what is stored (an OpenAI ``chat.completion`` body, as the stages left it) and
how a streamed answer is put back together into one, so that a stream and a complete answer share
entries and either can be served as the other."""

from __future__ import annotations

import time
from typing import Any

import orjson

#: Finish reasons of answers that are complete and unaltered. ``length`` (cut at max_tokens),
#: ``content_filter`` (withheld) and anything unknown are never stored.
STORABLE_FINISH = frozenset({"stop", "tool_calls", "function_call", "end_turn", "stop_sequence", "tool_use"})


def storable(body: dict[str, Any]) -> bool:
    """A complete answer whose every choice finished normally."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(choice, dict) and choice.get("finish_reason") in STORABLE_FINISH for choice in choices)


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps({"at": time.time(), "body": body})


def decode(value: bytes) -> tuple[dict[str, Any], float] | None:
    """(body, wall-clock time it was stored) or None for anything unreadable."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("body"), dict):
        return None
    at = record.get("at")
    return record["body"], float(at) if isinstance(at, int | float) else 0.0


class StreamAnswer:
    """Folds ``chat.completion.chunk`` dicts into the ``chat.completion`` they amount to."""

    __slots__ = ("_calls", "_choices", "_head", "_usage")

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if self._head is None:
            self._head = {name: chunk.get(name) for name in ("id", "created", "model")}
            if chunk.get("system_fingerprint") is not None:
                self._head["system_fingerprint"] = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = {"index": index, "message": {"role": "assistant"}, "finish_reason": None}
        message = state["message"]
        delta = choice.get("delta")
        for name, value in delta.items() if isinstance(delta, dict) else ():
            if name == "tool_calls":
                self._add_calls(index, value)
            elif name == "role":
                message["role"] = value or "assistant"
            elif isinstance(value, str):
                message[name] = (message.get(name) or "") + value
            elif value is not None:
                message[name] = value
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            kept = state.setdefault("logprobs", {"content": []})
            kept["content"].extend(logprobs["content"])
        for name, value in choice.items():
            if name == "finish_reason":
                if value:
                    state["finish_reason"] = value
            elif name not in ("index", "delta", "logprobs"):
                state[name] = value

    def _add_calls(self, index: int, calls: Any) -> None:
        merged = self._calls.setdefault(index, {})
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            position = call.get("index", len(merged))
            current = merged.setdefault(
                position, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if call.get("id"):
                current["id"] = call["id"]
            if call.get("type"):
                current["type"] = call["type"]
            function = call.get("function")
            if isinstance(function, dict):
                if function.get("name"):
                    current["function"]["name"] += function["name"]
                if function.get("arguments"):
                    current["function"]["arguments"] += function["arguments"]

    def body(self) -> dict[str, Any] | None:
        """The whole answer, or None when the stream did not finish every choice."""
        if self._head is None or not self._choices:
            return None
        choices = []
        for index in sorted(self._choices):
            choice = self._choices[index]
            calls = self._calls.get(index)
            if calls:
                choice["message"]["tool_calls"] = [calls[position] for position in sorted(calls)]
            choice["message"].setdefault("content", None)
            choices.append(choice)
        body: dict[str, Any] = {**self._head, "object": "chat.completion", "choices": choices}
        if self._usage is not None:
            body["usage"] = self._usage
        return body
