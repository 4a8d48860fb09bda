"""An independent validator for the export files, written from the sources and not from the
product's code: OpenAI's cookbook "Data preparation and analysis for chat model fine-tuning"
(format error counting, verbatim in structure, with tool use allowed as the fine-tuning API
allows it), OpenAI's preference fine-tuning line shape, and Amazon Bedrock's rules for Claude
fine-tuning conversations (and the bedrock-conversation-2024 schema)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any


def cookbook_format_errors(dataset: list[Any]) -> dict[str, int]:
    format_errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if not isinstance(message, dict):
                format_errors["message_missing_key"] += 1
                continue
            tool_calls = message.get("tool_calls")
            if "role" not in message or ("content" not in message and not tool_calls):
                format_errors["message_missing_key"] += 1
            if any(
                k not in ("role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id")
                for k in message
            ):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function", "tool"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None) or tool_calls
            if function_call and message.get("role") == "assistant" and content is None:
                continue
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(isinstance(m, dict) and m.get("role", None) == "assistant" for m in messages):
            format_errors["example_missing_assistant_message"] += 1
    return dict(format_errors)


def dpo_ok(line: Any) -> bool:
    if not isinstance(line, dict) or set(line) != {"input", "preferred_output", "non_preferred_output"}:
        return False
    messages = line["input"].get("messages") if isinstance(line["input"], dict) else None
    if not messages or cookbook_format_errors([{"messages": [*messages, {"role": "assistant", "content": "x"}]}]):
        return False
    outputs = [line["preferred_output"], line["non_preferred_output"]]
    return messages[-1]["role"] == "user" and all(
        isinstance(o, list) and len(o) == 1 and o[0].get("role") == "assistant" and isinstance(o[0].get("content"), str)
        for o in outputs
    )


def bedrock_ok(line: Any, schema_2024: bool) -> bool:
    """At least two messages, user first, assistant last, strict alternation, text content, no
    other keys."""
    if not isinstance(line, dict):
        return False
    keys = {"schemaVersion", "system", "messages"} if schema_2024 else {"system", "messages"}
    if not set(line) <= keys or "messages" not in line:
        return False
    if schema_2024 and line.get("schemaVersion") != "bedrock-conversation-2024":
        return False
    messages = line["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        return False
    for i, message in enumerate(messages):
        if set(message) != {"role", "content"}:
            return False
        if message["role"] != ("user" if i % 2 == 0 else "assistant"):
            return False
        content = message["content"]
        if schema_2024:
            if not isinstance(content, list) or not content:
                return False
            if not all(set(part) == {"text"} and isinstance(part["text"], str) and part["text"] for part in content):
                return False
        elif not isinstance(content, str) or not content:
            return False
    if messages[-1]["role"] != "assistant":
        return False
    if "system" in line:
        system = line["system"]
        if schema_2024:
            return isinstance(system, list) and all(set(s) == {"text"} for s in system)
        return isinstance(system, str)
    return True


def jsonl(data: bytes) -> list[Any]:
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]
