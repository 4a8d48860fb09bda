"""Vocabulary shared by both Anthropic translations (the dialect clients speak and the provider
Bastion calls): stop reasons, usage accounting, identifiers and tool-argument decoding.

It lives with the providers because the dialects already build on them (``providers.base``) and
a provider must not depend on a dialect."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


#: The internal (OpenAI-shaped) choice's extra key naming the stop sequence that ended the answer,
#: set by the providers that know it (Anthropic, the local model); the OpenAI dialect drops it.
STOP_SEQUENCE = "stop_sequence"


def matched_stop_sequence(choice: dict[str, Any], stop_sequences: list[str]) -> str | None:
    """The requested stop sequence that ended ``choice``, when anyone said which: Bastion's own
    key, or vLLM's ``stop_reason`` (the matched string). Plain OpenAI only says ``stop``."""
    if choice.get("finish_reason") != "stop":
        return None
    for found in (choice.get(STOP_SEQUENCE), choice.get("stop_reason")):
        if isinstance(found, str) and found in stop_sequences:
            return found
    return None


def anthropic_stop_reason(finish_reason: str | None, stop_sequence: str | None = None) -> str:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason``; ``stop`` is ``stop_sequence`` when
    the matched sequence is known (``matched_stop_sequence``), ``end_turn`` otherwise."""
    if stop_sequence is not None and (finish_reason or "stop") == "stop":
        return "stop_sequence"
    return _FINISH_TO_STOP.get(finish_reason or "stop", "end_turn")


def openai_finish_reason(stop_reason: str | None) -> str:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason``."""
    return _STOP_TO_FINISH.get(stop_reason or "end_turn", "stop")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage.

    Anthropic's ``input_tokens`` excludes cached tokens while OpenAI's ``prompt_tokens`` includes
    them. The two cache counts are also kept as LiteLLM-style extra keys so that translating back
    to Anthropic is exact (OpenAI has no field for cache writes)."""
    usage = usage or {}
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    created = _count(usage.get("cache_creation_input_tokens"))
    completion = _count(usage.get("output_tokens"))
    prompt = fresh + read + created
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": created,
    }
    breakdown = cache_creation_breakdown(usage)
    if breakdown is not None:
        out["cache_creation"] = breakdown
    return out


def cache_creation_breakdown(usage: dict[str, Any]) -> dict[str, int] | None:
    """Anthropic's ``cache_creation`` object (cache writes by TTL: 5 minutes, 1 hour), when the
    usage has one; the two TTLs are priced differently (docs/LEDGER.md)."""
    breakdown = usage.get("cache_creation")
    if not isinstance(breakdown, dict):
        return None
    return {
        "ephemeral_5m_input_tokens": _count(breakdown.get("ephemeral_5m_input_tokens")),
        "ephemeral_1h_input_tokens": _count(breakdown.get("ephemeral_1h_input_tokens")),
    }


def anthropic_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage -> Anthropic usage (the inverse of ``openai_usage``)."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details")
    read = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    read = read or _count(usage.get("cache_read_input_tokens"))
    created = _count(usage.get("cache_creation_input_tokens"))
    fresh = max(0, _count(usage.get("prompt_tokens")) - read - created)
    out: dict[str, Any] = {
        "input_tokens": fresh,
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": created,
    }
    breakdown = cache_creation_breakdown(usage)
    if breakdown is not None:
        out["cache_creation"] = breakdown
    return out


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def message_id_for(openai_id: Any) -> str:
    """``chatcmpl-X`` -> ``msg_X`` so logs on both sides can be matched; otherwise a fresh id."""
    if isinstance(openai_id, str) and openai_id.startswith("chatcmpl-") and len(openai_id) > 9:
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return new_message_id()


def completion_id_for(message_id: Any) -> str:
    """``msg_X`` -> ``chatcmpl-X``; otherwise a fresh id."""
    if isinstance(message_id, str) and message_id:
        return "chatcmpl-" + message_id.removeprefix("msg_")
    return "chatcmpl-" + uuid.uuid4().hex


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` for a base64 ``data:`` URL, else ``None``."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match["type"].lower(), match["data"]


def tool_input(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as an Anthropic ``input`` object.

    Models sometimes emit invalid JSON; Anthropic requires an object, so the raw text is kept
    under ``_raw_arguments`` rather than lost, or turned into an error after it was paid for."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        return {"_raw_arguments": str(arguments)}
    return value if isinstance(value, dict) else {"_raw_arguments": str(arguments)}
