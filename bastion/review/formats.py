"""From a frozen dataset example to one line of an export format, with the repairs the caller asked
for (and only those: each applied repair is counted in the export's report).

Formats:

``openai``                ``{"messages": [...], "tools": [...]}``: chat fine-tuning; the reviewed
                          answer is the last assistant turn, ``weight`` 1; earlier assistant turns
                          of a multi-turn example get ``weight`` 0 (context, not target).
``openai-dpo``            ``{"input": {"messages": [...]}, "preferred_output": [...],
                          "non_preferred_output": [...]}`` from pairwise reviews.
``anthropic``             ``{"system": "...", "messages": [...]}``: the Bedrock fine-tuning format for
                          Claude (text turns, user first, assistant last, strictly alternating).
``bedrock-conversation``  ``bedrock-conversation-2024``: ``{"schemaVersion": ..., "system": [{"text"}],
                          "messages": [{"role", "content": [{"text"}]}]}``, the same rules.

The system prompt: ``original`` (the vault prompt the interaction used, decrypted by the caller,
before the client's own system messages), ``replace`` (one given text instead of every system
message) or ``none`` (no system prompt at all).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

OPENAI, OPENAI_DPO, ANTHROPIC, BEDROCK = "openai", "openai-dpo", "anthropic", "bedrock-conversation"
FORMATS: Final = (OPENAI, OPENAI_DPO, ANTHROPIC, BEDROCK)
#: The dataset kind each format reads.
FORMAT_KIND: Final = {OPENAI: "sft", OPENAI_DPO: "preference", ANTHROPIC: "sft", BEDROCK: "sft"}
BEDROCK_SCHEMA: Final = "bedrock-conversation-2024"
SYSTEM_MODES: Final = ("original", "replace", "none")
#: Repair flags, per format family; anything else is a 400.
OPENAI_REPAIRS: Final = ("strip_unknown_keys", "developer_as_system")
ANTHROPIC_REPAIRS: Final = ("merge_consecutive", "drop_leading_assistant", "drop_tool_turns", "hoist_system")
REPAIRS: Final = {
    OPENAI: OPENAI_REPAIRS,
    OPENAI_DPO: OPENAI_REPAIRS,
    ANTHROPIC: ANTHROPIC_REPAIRS,
    BEDROCK: ANTHROPIC_REPAIRS,
}
OPENAI_MESSAGE_KEYS: Final = frozenset(
    {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"}
)
SYSTEM_ROLES: Final = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class ExportOptions:
    format: str
    system: str = "original"
    system_prompt: str | None = None
    repairs: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system, "repairs": sorted(self.repairs)}
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        return out


@dataclass
class Formatted:
    """One example's line (None: rejected), the repairs applied and the rejection's named errors."""

    line: dict[str, Any] | None
    repairs: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)


def _text_of(content: Any, notes: Counter[str]) -> Any:
    """Text-only content-part arrays as one string (counted); anything else unchanged."""
    if (
        isinstance(content, list)
        and content
        and all(
            isinstance(p, dict)
            and p.get("type") in ("text", "input_text", "output_text")
            and isinstance(p.get("text"), str)
            for p in content
        )
    ):
        notes["text_parts_joined"] += 1
        return "\n".join(p["text"] for p in content)
    return content


def _system_texts(messages: list[Any]) -> list[str]:
    return [
        m["content"]
        for m in messages
        if isinstance(m, dict) and m.get("role") in SYSTEM_ROLES and isinstance(m.get("content"), str)
    ]


def _prepare_messages(
    example: dict[str, Any], options: ExportOptions, vault_system: str | None, out: Formatted
) -> tuple[list[Any], str | None]:
    """The example's input turns (content-part arrays joined), and the system text to use."""
    raw = example.get("messages")
    if not isinstance(raw, list):
        return raw, None  # type: ignore[return-value]  # reported by the validator as it stands
    messages: list[Any] = []
    for message in raw:
        if isinstance(message, dict) and "content" in message:
            message = {**message, "content": _text_of(message["content"], out.notes)}
        messages.append(message)
    if options.system == "original":
        system = vault_system
    elif options.system == "replace":
        system = options.system_prompt
        messages = [m for m in messages if not (isinstance(m, dict) and m.get("role") in SYSTEM_ROLES)]
    else:
        system = None
        messages = [m for m in messages if not (isinstance(m, dict) and m.get("role") in SYSTEM_ROLES)]
    return messages, system


def _openai_messages(
    messages: list[Any], system: str | None, options: ExportOptions, out: Formatted, *, weights: bool = True
) -> list[Any]:
    result: list[Any] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if isinstance(message, dict):
            if message.get("role") == "developer" and "developer_as_system" in options.repairs:
                message = {**message, "role": "system"}
                out.repairs["developer_as_system"] += 1
            if "strip_unknown_keys" in options.repairs and any(k not in OPENAI_MESSAGE_KEYS for k in message):
                message = {k: v for k, v in message.items() if k in OPENAI_MESSAGE_KEYS}
                out.repairs["strip_unknown_keys"] += 1
            if weights and message.get("role") == "assistant" and "weight" not in message:
                message = {**message, "weight": 0}
        result.append(message)
    return result


def format_example(example: dict[str, Any], options: ExportOptions, vault_system: str | None) -> Formatted:
    out = Formatted(None)
    messages, system = _prepare_messages(example, options, vault_system, out)
    if not isinstance(messages, list):
        out.line = {"messages": messages}
        return out
    if options.format == OPENAI:
        answer = {"role": "assistant", "content": example.get("answer"), "weight": 1}
        line: dict[str, Any] = {"messages": [*_openai_messages(messages, system, options, out), answer]}
        if example.get("tools"):
            line["tools"] = example["tools"]
        out.line = line
    elif options.format == OPENAI_DPO:
        inputs = _openai_messages(messages, system, options, out, weights=False)
        out.line = {
            "input": {"messages": inputs},
            "preferred_output": [{"role": "assistant", "content": example.get("preferred")}],
            "non_preferred_output": [{"role": "assistant", "content": example.get("non_preferred")}],
        }
    else:
        out.line = _anthropic(messages, system, example.get("answer"), options, out)
    return out


def _anthropic(
    messages: list[Any], system: str | None, answer: Any, options: ExportOptions, out: Formatted
) -> dict[str, Any] | None:
    """Text turns under Bedrock's rules; a rule broken and not repaired rejects the example."""
    repairs = options.repairs
    texts: list[str] = [system] if system else []
    turns: list[dict[str, Any]] = []
    seen_turn = False
    for message in [*messages, {"role": "assistant", "content": answer}]:
        if not isinstance(message, dict):
            out.errors["invalid_message"] += 1
            continue
        role = message.get("role")
        if role in SYSTEM_ROLES:
            if seen_turn and "hoist_system" not in repairs:
                out.errors["system_not_first"] += 1
            elif seen_turn:
                out.repairs["hoist_system"] += 1
            if isinstance(message.get("content"), str) and message["content"]:
                texts.append(message["content"])
            continue
        seen_turn = True
        if role == "tool" or message.get("tool_calls") or message.get("function_call"):
            if "drop_tool_turns" not in repairs:
                out.errors["tool_turns"] += 1
                continue
            out.repairs["drop_tool_turns"] += 1
            if role == "tool" or not isinstance(message.get("content"), str) or not message["content"]:
                continue
        if role not in ("user", "assistant"):
            out.errors["unknown_role"] += 1
            continue
        content = message.get("content")
        if not isinstance(content, str):
            out.errors["invalid_content"] += 1
            continue
        if not content.strip():
            out.errors["empty_content"] += 1
            continue
        turns.append({"role": role, "content": content})
    if "drop_leading_assistant" in repairs:
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
            out.repairs["drop_leading_assistant"] += 1
    if "merge_consecutive" in repairs:
        merged: list[dict[str, Any]] = []
        for turn in turns:
            if merged and merged[-1]["role"] == turn["role"]:
                merged[-1] = {"role": turn["role"], "content": merged[-1]["content"] + "\n\n" + turn["content"]}
                out.repairs["merge_consecutive"] += 1
            else:
                merged.append(turn)
        turns = merged
    if out.errors:
        return None
    system_text = "\n\n".join(texts) if texts else None
    if options.format == BEDROCK:
        line: dict[str, Any] = {"schemaVersion": BEDROCK_SCHEMA}
        if system_text:
            line["system"] = [{"text": system_text}]
        line["messages"] = [{"role": t["role"], "content": [{"text": t["content"]}]} for t in turns]
        return line
    line = {"system": system_text} if system_text else {}
    line["messages"] = turns
    return line
