"""The Anthropic Messages dialect: what clients calling ``POST /v1/messages`` send and receive.

Requests are translated to the internal OpenAI chat-completions shape, answers back to Anthropic
Messages. Anthropic-only information that a round trip to an Anthropic deployment must keep rides
along in the OpenAI-shaped dicts as extra keys, the way LiteLLM carries it:

* ``cache_control`` on content parts, on system message parts, on tools and on tool calls, and at
  the top level of the body;
* ``is_error`` on ``role: "tool"`` messages (from ``tool_result.is_error``);
* ``top_k`` at the top level.

OpenAI-compatible upstreams must never see these: ``bastion.providers.anthropic_extras`` removes
them before the OpenAI provider sends a body.

Knowingly dropped: ``thinking`` config and thinking/redacted_thinking blocks (no OpenAI
equivalent), ``output_config.effort``, ``service_tier``, ``container`` and other Anthropic-only
top-level fields, citations, document titles/context. ``output_config.format`` (structured
output) becomes ``response_format`` ``json_schema``.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.dialects.anthropic_schema import (
    ContentBlock,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    validate_request,
)
from bastion.dialects.anthropic_stream import AnthropicStreamEncoder, error_event
from bastion.dialects.extension import FIELD as EXTENSION_FIELD
from bastion.errors import InvalidRequest
from bastion.providers.anthropic_common import (
    anthropic_stop_reason,
    anthropic_usage,
    data_url,
    matched_stop_sequence,
    message_id_for,
    new_message_id,
    new_tool_id,
    openai_finish_reason,
    openai_usage,
    tool_input,
)
from bastion.providers.anthropic_extras import has_cache_control

__all__ = [
    "AnthropicStreamEncoder",
    "anthropic_stop_reason",
    "anthropic_usage",
    "error_event",
    "new_message_id",
    "openai_finish_reason",
    "openai_response_to_anthropic",
    "openai_usage",
    "parse_anthropic_request",
]

# --- request: Anthropic -> OpenAI ----------------------------------------------------------------


def parse_anthropic_request(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate an Anthropic Messages request and translate it to an OpenAI chat-completions body.

    Returns ``(openai_body, info)``; ``info`` has ``model``, ``stream``, ``max_tokens``,
    ``stop_sequences`` and ``cache_control`` (whether any ``cache_control`` marker was present). Raises
    ``InvalidRequest`` with the offending field in ``param``.
    """
    request = validate_request(raw)
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        system = _system_message(request.system)
        if system is not None:
            messages.append(system)
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
        elif message.role == "user":
            messages.extend(_user_messages(message.content, f"messages.{i}"))
        else:
            messages.append(_assistant_message(message.content, f"messages.{i}"))

    stream = bool(request.stream)
    body: dict[str, Any] = {"model": request.model, "messages": messages, "max_tokens": request.max_tokens}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if request.tools:
        body["tools"] = [_tool(tool.model_dump(exclude_none=True)) for tool in request.tools]
    if request.tool_choice is not None:
        choice = request.tool_choice
        if choice.type == "auto":
            body["tool_choice"] = "auto"
        elif choice.type == "any":
            body["tool_choice"] = "required"
        elif choice.type == "none":
            body["tool_choice"] = "none"
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        if getattr(choice, "disable_parallel_tool_use", None):
            body["parallel_tool_calls"] = False
    if request.output_config is not None and request.output_config.format is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.output_config.format.schema_},
        }
    if request.cache_control is not None:
        body["cache_control"] = request.cache_control.model_dump(exclude_none=True)
    # Bastion's own request field (``bastion``) is not part of the translation: the HTTP layer
    # parses it from the raw body (``bastion.dialects.extension``).

    info = {
        "model": request.model,
        "stream": stream,
        "max_tokens": request.max_tokens,
        "stop_sequences": list(request.stop_sequences or ()),
        "cache_control": has_cache_control(raw),
    }
    return body, info


def _cache(part: dict[str, Any], block: Any) -> dict[str, Any]:
    if getattr(block, "cache_control", None) is not None:
        part["cache_control"] = block.cache_control.model_dump(exclude_none=True)
    return part


def _system_message(system: str | list[TextBlock]) -> dict[str, Any] | None:
    if isinstance(system, str):
        return {"role": "system", "content": system} if system else None
    if not system:
        return None
    if len(system) == 1 and system[0].cache_control is None:
        return {"role": "system", "content": system[0].text}
    # Several blocks or cache markers: keep the blocks, so each marker stays where it was.
    return {"role": "system", "content": [_cache({"type": "text", "text": b.text}, b) for b in system]}


def _text_part(block: TextBlock) -> dict[str, Any]:
    return _cache({"type": "text", "text": block.text}, block)


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    url = source.url if source.type == "url" else data_url(source.media_type, source.data)
    return _cache({"type": "image_url", "image_url": {"url": url}}, block)


def _document_part(block: DocumentBlock, where: str) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        file: dict[str, Any] = {"file_data": data_url(source.media_type, source.data)}
        if block.title:
            file["filename"] = block.title
        return _cache({"type": "file", "file": file}, block)
    if source.type == "text":
        return _cache({"type": "text", "text": source.data}, block)
    if source.type == "content":
        content = source.content
        text = content if isinstance(content, str) else "\n".join(b.text for b in content)
        return _cache({"type": "text", "text": text}, block)
    raise InvalidRequest(f"{where}.source: URL documents are not supported", param=f"{where}.source")


def _content_part(block: ContentBlock, where: str) -> dict[str, Any] | None:
    """One user-side content block as an OpenAI content part (``None``: dropped)."""
    if isinstance(block, TextBlock):
        return _text_part(block)
    if isinstance(block, ImageBlock):
        return _image_part(block)
    if isinstance(block, DocumentBlock):
        return _document_part(block, where)
    if isinstance(block, ToolUseBlock):
        raise InvalidRequest(f"{where}: tool_use blocks belong in assistant messages", param=where)
    return None  # thinking / redacted_thinking: nothing to say to a model that did not produce it


def _user_messages(blocks: list[ContentBlock], where: str) -> list[dict[str, Any]]:
    """A user turn becomes ``role: "tool"`` messages (one per tool_result) then the user message.

    OpenAI wants tool results right after the assistant's tool calls, so they go first even if
    a client interleaved text before them. Images inside a tool result cannot ride in a tool
    message; they move to the user message that follows, so the model still sees them.
    """
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        if isinstance(block, ToolResultBlock):
            message, extra_parts = _tool_message(block, f"{where}.content.{j}")
            tool_messages.append(message)
            parts.extend(extra_parts)
            continue
        part = _content_part(block, f"{where}.content.{j}")
        if part is not None:
            parts.append(part)
    if not parts:
        return tool_messages or [{"role": "user", "content": ""}]
    if len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]:
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _tool_message(block: ToolResultBlock, where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block.tool_use_id}
    moved: list[dict[str, Any]] = []
    content = block.content
    if content is None or isinstance(content, str):
        message["content"] = content or ""
    else:
        texts: list[dict[str, Any]] = []
        for k, item in enumerate(content):
            if isinstance(item, ImageBlock):
                moved.append(_image_part(item))
                continue
            part = _text_part(item) if isinstance(item, TextBlock) else _document_part(item, f"{where}.content.{k}")
            if part["type"] == "text":
                texts.append(part)
            else:
                moved.append(part)
        if len(texts) == 1 and "cache_control" not in texts[0]:
            message["content"] = texts[0]["text"]
        else:
            # OpenAI-compatible servers refuse an empty parts list; "" says the same thing.
            message["content"] = texts or ""
    if block.is_error:
        message["is_error"] = True
    return _cache(message, block), moved


def _assistant_message(blocks: list[ContentBlock], where: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        if isinstance(block, ToolUseBlock):
            call = {
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()},
            }
            calls.append(_cache(call, block))
        elif isinstance(block, TextBlock):
            parts.append(_text_part(block))
        elif isinstance(block, ToolResultBlock):
            raise InvalidRequest(
                f"{where}.content.{j}: tool_result blocks belong in user messages", param=f"{where}.content.{j}"
            )
        elif isinstance(block, ImageBlock | DocumentBlock):
            raise InvalidRequest(
                f"{where}.content.{j}: assistant messages cannot contain {block.type} blocks",
                param=f"{where}.content.{j}",
            )
        # thinking / redacted_thinking are dropped: OpenAI has no place for them.
    message: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in part for part in parts):
        message["content"] = parts
    elif parts:
        # Plain strings are what every OpenAI-compatible server accepts for assistant turns.
        message["content"] = "".join(part["text"] for part in parts)
    else:
        message["content"] = None if calls else ""
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    out: dict[str, Any] = {"type": "function", "function": function}
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


# --- response: OpenAI -> Anthropic ---------------------------------------------------------------


def openai_response_to_anthropic(
    body: dict[str, Any], model: str, stop_sequences: list[str] | None = None
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic Message (``model`` is what the client asked
    for; ``stop_sequences`` what it asked to stop on, to name the one that matched)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):  # some servers answer with content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and p.get("type") == "text")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    finish = choice.get("finish_reason")
    refusal = message.get("refusal")
    if not content and isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
        finish = "content_filter"
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_tool_id(),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    stop_sequence = matched_stop_sequence(choice, stop_sequences or [])
    stop_reason = anthropic_stop_reason(finish, stop_sequence)
    if stop_reason != "stop_sequence":
        stop_sequence = None
    if stop_reason == "end_turn" and any(block["type"] == "tool_use" for block in content):
        stop_reason = "tool_use"  # some servers say "stop" after tool calls
    message_out = {
        "id": message_id_for(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(body.get("usage")),
    }
    if isinstance(body.get(EXTENSION_FIELD), dict):
        # Bastion's own answer field (sources and citations), which the SDKs keep as an extra.
        message_out[EXTENSION_FIELD] = body[EXTENSION_FIELD]
    return message_out
