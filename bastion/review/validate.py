"""Validation of export lines and the export's report.

OpenAI chat fine-tuning lines get the checks of OpenAI's cookbook "Data preparation and analysis
for chat model fine-tuning", under its own error names, counted as it counts them (message-level
errors once per message): ``data_type``, ``missing_messages_list``, ``message_missing_key``,
``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
``example_missing_assistant_message``. Tool use, which the cookbook predates, is allowed as the
fine-tuning API allows it: ``tool_calls`` / ``tool_call_id`` keys, the ``tool`` role, and an
assistant message with tool calls may have no content. Its warnings (no system / no user message,
examples over the token limit) and the token distribution, billing tokens and default epochs are
the report's. Preference (DPO) lines and the Anthropic/Bedrock conversation formats have their
own named errors. Token counts come from Bastion's offline tokenizer (``bastion.usage``): close to,
not equal to, OpenAI's.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from typing import Any, Final

from bastion.review.formats import ANTHROPIC, BEDROCK, BEDROCK_SCHEMA, OPENAI, OPENAI_DPO, OPENAI_MESSAGE_KEYS
from bastion.usage import count_messages, count_text, count_tools, tokenizer_name

OPENAI_ROLES: Final = frozenset({"system", "user", "assistant", "function", "tool"})
#: The cookbook's epoch heuristics.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
#: OpenAI refuses fine-tuning files with fewer examples.
OPENAI_MIN_EXAMPLES: Final = 10


def openai_message_errors(messages: Any, errors: Counter[str]) -> None:
    for message in messages:
        if not isinstance(message, dict):
            errors["message_missing_key"] += 1
            continue
        if "role" not in message or ("content" not in message and not message.get("tool_calls")):
            errors["message_missing_key"] += 1
        if any(k not in OPENAI_MESSAGE_KEYS for k in message):
            errors["message_unrecognized_key"] += 1
        if message.get("role") not in OPENAI_ROLES:
            errors["unrecognized_role"] += 1
        content = message.get("content")
        calls = message.get("tool_calls") or message.get("function_call")
        if calls and message.get("role") == "assistant" and content is None:
            continue
        if not content or not isinstance(content, str):
            errors["missing_content"] += 1


def openai_errors(line: Any) -> Counter[str]:
    errors: Counter[str] = Counter()
    if not isinstance(line, dict):
        errors["data_type"] += 1
        return errors
    messages = line.get("messages")
    if not messages or not isinstance(messages, list):
        errors["missing_messages_list"] += 1
        return errors
    openai_message_errors(messages, errors)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        errors["example_missing_assistant_message"] += 1
    return errors


def dpo_errors(line: Any) -> Counter[str]:
    errors: Counter[str] = Counter()
    if not isinstance(line, dict):
        errors["data_type"] += 1
        return errors
    unknown = set(line) - {"input", "preferred_output", "non_preferred_output"}
    if unknown:
        errors["unrecognized_key"] += 1
    source = line.get("input")
    messages = source.get("messages") if isinstance(source, dict) else None
    if not messages or not isinstance(messages, list):
        errors["missing_input_messages"] += 1
    else:
        openai_message_errors(messages, errors)
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            errors["input_not_ending_with_user"] += 1
    outputs = []
    for name in ("preferred_output", "non_preferred_output"):
        output = line.get(name)
        ok = (
            isinstance(output, list)
            and len(output) == 1
            and isinstance(output[0], dict)
            and output[0].get("role") == "assistant"
            and isinstance(output[0].get("content"), str)
            and bool(output[0]["content"])
        )
        if not ok:
            errors[f"invalid_{name}"] += 1
        else:
            outputs.append(output[0]["content"])  # type: ignore[index]
    if len(outputs) == 2 and outputs[0] == outputs[1]:
        errors["identical_outputs"] += 1
    return errors


def conversation_errors(line: Any, bedrock: bool) -> Counter[str]:
    """Bedrock's rules for Claude fine-tuning conversations (and the 2024 schema's shape)."""
    errors: Counter[str] = Counter()
    if not isinstance(line, dict):
        errors["not_a_dict"] += 1
        return errors
    allowed = {"schemaVersion", "system", "messages"} if bedrock else {"system", "messages"}
    if set(line) - allowed:
        errors["unrecognized_key"] += 1
    if bedrock and line.get("schemaVersion") != BEDROCK_SCHEMA:
        errors["wrong_schema_version"] += 1
    system = line.get("system")
    if system is not None:
        ok = (
            isinstance(system, list) and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in system)
            if bedrock
            else isinstance(system, str)
        )
        if not ok:
            errors["invalid_system"] += 1
    messages = line.get("messages")
    if not isinstance(messages, list):
        errors["missing_messages"] += 1
        return errors
    if len(messages) < 2:
        errors["too_few_messages"] += 1
    roles: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            errors["invalid_message"] += 1
            roles.append(None)
            continue
        if set(message) - {"role", "content"}:
            errors["unrecognized_message_key"] += 1
        role = message.get("role")
        roles.append(role)
        if role not in ("user", "assistant"):
            errors["unknown_role"] += 1
        content = message.get("content")
        if bedrock:
            text_ok = (
                isinstance(content, list)
                and len(content) > 0
                and all(
                    isinstance(c, dict) and set(c) == {"text"} and isinstance(c["text"], str) and c["text"].strip()
                    for c in content
                )
            )
        else:
            text_ok = isinstance(content, str) and bool(content.strip())
        if not text_ok:
            errors["empty_content"] += 1
    if roles and roles[0] != "user":
        errors["first_not_user"] += 1
    if roles and roles[-1] != "assistant":
        errors["last_not_assistant"] += 1
    if any(a == b for a, b in itertools.pairwise(roles)):
        errors["not_alternating"] += 1
    return errors


def line_errors(format_name: str, line: Any) -> Counter[str]:
    if format_name == OPENAI:
        return openai_errors(line)
    if format_name == OPENAI_DPO:
        return dpo_errors(line)
    return conversation_errors(line, format_name == BEDROCK)


def _distribution(values: list[int]) -> dict[str, float | int] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 2),
        "median": statistics.median(ordered),
        "p5": pct(0.05),
        "p95": pct(0.95),
    }


class ReportBuilder:
    """Accumulates an export's report, one line at a time (only counts and one int per line kept)."""

    def __init__(self, format_name: str, max_tokens: int) -> None:
        self.format = format_name
        self.max_tokens = max_tokens
        self.examples = 0
        self.written = 0
        self.errors: Counter[str] = Counter()
        self.rejected: list[dict[str, Any]] = []
        self.rejected_count = 0
        self.repairs: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.totals: list[int] = []
        self.assistant: list[int] = []
        self.turns: list[int] = []

    def reject(self, interaction_id: str, errors: Counter[str]) -> None:
        self.rejected_count += 1
        self.errors.update(errors)
        if len(self.rejected) < 100:
            self.rejected.append({"interaction_id": interaction_id, "errors": dict(sorted(errors.items()))})

    def accept(self, line: dict[str, Any]) -> None:
        self.written += 1
        messages = _messages_of(self.format, line)
        self.turns.append(len(messages))
        if not any(m.get("role") == "system" for m in messages) and not line.get("system"):
            self.warnings["missing_system_message"] += 1
        if not any(m.get("role") == "user" for m in messages):
            self.warnings["missing_user_message"] += 1
        system = line.get("system")
        if isinstance(system, list):  # bedrock-conversation-2024: [{"text": ...}]
            system = "".join(str(part.get("text") or "") for part in system if isinstance(part, dict))
        extra = count_text(system if isinstance(system, str) else "") + count_tools(line.get("tools"))
        total = count_messages(messages) + extra
        self.totals.append(total)
        self.assistant.append(
            sum(count_text(str(m.get("content") or "")) for m in messages if m.get("role") == "assistant")
        )
        if total > self.max_tokens:
            self.warnings["over_token_limit"] += 1

    def report(self) -> dict[str, Any]:
        n = self.written
        epochs = TARGET_EPOCHS
        if n and n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
            epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
        elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
            epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
        billing = sum(min(self.max_tokens, t) for t in self.totals)
        return {
            "format": self.format,
            "examples": self.examples,
            "written": n,
            "rejected": self.rejected_count,
            "errors": dict(sorted(self.errors.items())),
            "rejected_examples": self.rejected,
            "repairs": dict(sorted(self.repairs.items())),
            "normalized": dict(sorted(self.notes.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "tokens": {
                "tokenizer": tokenizer_name(),
                "max_tokens_per_example": self.max_tokens,
                "per_example": _distribution(self.totals),
                "assistant_per_example": _distribution(self.assistant),
                "messages_per_example": _distribution(self.turns),
            },
            "billing": {
                "tokens_in_dataset": billing,
                "default_epochs": epochs,
                "estimated_billed_tokens": billing * epochs,
            },
        }


def _messages_of(format_name: str, line: dict[str, Any]) -> list[dict[str, Any]]:
    if format_name == OPENAI:
        return list(line["messages"])
    if format_name == OPENAI_DPO:
        return [*line["input"]["messages"], *line["preferred_output"]]
    if format_name == ANTHROPIC:
        return list(line["messages"])
    return [{"role": m["role"], "content": "".join(c["text"] for c in m["content"])} for m in line["messages"]]
