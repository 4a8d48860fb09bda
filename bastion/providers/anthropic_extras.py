"""What an OpenAI-compatible upstream accepts: the Anthropic-only extras removed.

The Anthropic dialect carries fields a round trip to an Anthropic deployment must keep in the
internal OpenAI-shaped body, the way LiteLLM does: ``cache_control`` (top level, content parts,
system parts, tools, tool calls), ``is_error`` on ``role: "tool"`` messages, and ``top_k``. The
Anthropic provider translates them; an OpenAI-compatible upstream must never see them, since
OpenAI answers 400 to unknown fields.

``top_k`` is dropped for every OpenAI-compatible upstream, including servers that accept it (vLLM,
llama.cpp, Ollama). That is the safe default for api.openai.com, and it also drops a ``top_k`` an
OpenAI-dialect client sent on purpose for such a server; ``drop_top_k=False`` keeps it, but no
deployment setting selects that yet.
"""

from __future__ import annotations

from typing import Any


def has_cache_control(value: Any) -> bool:
    """Whether a ``cache_control`` key occurs anywhere in ``value`` (dicts and lists, recursively)."""
    if isinstance(value, dict):
        return "cache_control" in value or any(has_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(has_cache_control(v) for v in value)
    return False


def strip_cache_control(body: dict[str, Any], *, drop_top_k: bool = True) -> dict[str, Any]:
    """``body`` without the Anthropic-only extras, for an OpenAI-compatible upstream.

    Removes every ``cache_control`` (top level, message parts, tools, tool calls), ``is_error``
    on tool messages (an erroring tool result gets an ``Error:`` prefix instead, so the model
    still learns the tool failed) and ``top_k`` unless ``drop_top_k`` is false. The input is never
    modified, because the router may retry the same body on an Anthropic deployment; when there
    is nothing to strip, the same object is returned without copying.
    """
    needs = (
        "cache_control" in body
        or (drop_top_k and "top_k" in body)
        or has_cache_control(body.get("tools"))
        or any(isinstance(m, dict) and ("is_error" in m or has_cache_control(m)) for m in body.get("messages") or ())
    )
    if not needs:
        return body
    out = {k: v for k, v in body.items() if k != "cache_control" and not (drop_top_k and k == "top_k")}
    if isinstance(out.get("tools"), list):
        out["tools"] = [_without_cache(tool) for tool in out["tools"]]
    if isinstance(out.get("messages"), list):
        out["messages"] = [_strip_message(m) if isinstance(m, dict) else m for m in out["messages"]]
    return out


def _without_cache(value: Any) -> Any:
    if isinstance(value, dict) and "cache_control" in value:
        return {k: v for k, v in value.items() if k != "cache_control"}
    return value


def _strip_message(message: dict[str, Any]) -> dict[str, Any]:
    if "is_error" not in message and not has_cache_control(message):
        return message
    out = {k: v for k, v in message.items() if k not in ("cache_control", "is_error")}
    content = out.get("content")
    if isinstance(content, list):
        content = [_without_cache(part) for part in content]
    if message.get("is_error"):
        if isinstance(content, list):
            content = [{"type": "text", "text": "Error:"}, *content]
        else:
            content = f"Error: {content or ''}".rstrip()
    if "content" in out:
        out["content"] = content
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [_without_cache(call) for call in out["tool_calls"]]
    return out
