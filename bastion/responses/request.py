"""A Responses API request: its validation, its input as items, and its translation to the
chat-completions body the pipeline runs.

Items follow OpenAI's shapes: messages (``role`` and a string or a list of ``input_text`` /
``input_image`` / ``output_text`` parts), ``function_call`` and ``function_call_output``. In the
chat shape a run of function calls becomes one assistant message with ``tool_calls`` and each
output a ``tool`` message. Reasoning items carry nothing a chat upstream can use and are dropped.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.dialects.openai_schema import first_error, parse_object
from bastion.errors import InvalidRequest

#: Request fields accepted and not acted on (they tune OpenAI-hosted features a chat upstream lacks).
IGNORED_FIELDS = (
    "include",
    "reasoning",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
    "stream_options",
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionTool(_Open):
    type: Literal["function"]
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.\-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    description: str | None = None
    strict: bool | None = None


class TextParam(_Open):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Open):
    """``POST /v1/responses``: what Bastion reads; other fields are accepted and ignored."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextParam | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=16)] | None = None
    store: bool | None = None
    previous_response_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    stream: bool | None = None
    background: bool | None = None
    conversation: Any = None
    user: str | None = None
    #: Bastion's own field (vault prompt reference and variables), as on chat completions.
    bastion: dict[str, Any] | None = None


def validate_responses_request(body: Any) -> ResponsesRequest:
    request = parse_object(ResponsesRequest, body)
    if request.background:
        raise InvalidRequest("Invalid request: background responses are not supported.", param="background")
    if request.conversation is not None:
        raise InvalidRequest(
            "Invalid request: conversation objects are not supported; use previous_response_id.", param="conversation"
        )
    if request.input is None and request.previous_response_id is None:
        raise InvalidRequest("Invalid request: input: is required", param="input")
    return request


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


# -- input items ---------------------------------------------------------------------------------


def _content_parts(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    """A message's content as a list of Responses content parts (a string becomes one part)."""
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        part: dict[str, Any] = {"type": text_type, "text": content}
        if role == "assistant":
            part.update(annotations=[], logprobs=[])
        return [part]
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid request: {where}.content must be a string or a list of parts.", param=where)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "refusal", "text"):
            key = "refusal" if kind == "refusal" else "text"
            if not isinstance(part.get(key), str):
                raise InvalidRequest(f"Invalid request: {where}.content.{index}.{key} must be a string.", param=where)
            parts.append(dict(part))
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str):
                raise InvalidRequest(
                    f"Invalid request: {where}.content.{index}: input_image needs an image_url.",
                    param=where,
                )
            parts.append(dict(part))
        else:
            raise InvalidRequest(
                f"Invalid request: {where}.content.{index}: content part type {kind!r} is not supported "
                "(input_text, input_image with image_url, output_text, refusal).",
                param=where,
            )
    return parts


def normalize_input(raw: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's ``input`` as items, each checked and given an id (as ``input_items`` lists them)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [
            {
                "id": new_item_id("msg"),
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": raw}],
                "status": "completed",
            }
        ]
    items: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"input.{index}"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise InvalidRequest(
                    f"Invalid request: {where}.role must be user, system, developer or assistant.", param=where
                )
            content = _content_parts(item.get("content"), role, where)
            prefix = "msg"
            items.append(
                {"id": item.get("id") or new_item_id(prefix), "type": "message", "role": role, "content": content}
                | {"status": "completed"}
            )
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
                raise InvalidRequest(
                    f"Invalid request: {where}: a function_call needs string call_id, name and arguments.",
                    param=where,
                )
            items.append(
                {
                    "id": item.get("id") or new_item_id("fc"),
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments,
                    "status": "completed",
                }
            )
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not isinstance(output, str | list):
                raise InvalidRequest(
                    f"Invalid request: {where}: a function_call_output needs a string call_id and an output.",
                    param=where,
                )
            items.append(
                {
                    "id": item.get("id") or new_item_id("fco"),
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": output,
                    "status": "completed",
                }
            )
        elif kind == "reasoning":
            continue  # nothing a chat upstream can use
        else:
            raise InvalidRequest(
                f"Invalid request: {where}: item type {kind!r} is not supported "
                "(message, function_call, function_call_output).",
                param=where,
            )
    return items


# -- to the chat shape ---------------------------------------------------------------------------


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(str(part.get("text") or part.get("refusal") or "") for part in parts)


def _chat_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """User content for the chat shape: a plain string unless it carries images."""
    if all(part.get("type") != "input_image" for part in parts):
        return _text_of(parts)
    out: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "input_image":
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            out.append({"type": "text", "text": str(part.get("text") or "")})
    return out


def _tool_output_text(output: str | list[Any]) -> str:
    if isinstance(output, str):
        return output
    return "".join(str(part.get("text") or "") for part in output if isinstance(part, dict))


def items_to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses items as chat messages (developer becomes system: every provider knows that role)."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            if role == "assistant":
                messages.append({"role": "assistant", "content": _text_of(item["content"])})
            elif role == "system":
                messages.append({"role": "system", "content": _text_of(item["content"])})
            else:
                messages.append({"role": "user", "content": _chat_content(item["content"])})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # Calls following the assistant's text (or other calls) belong to the same turn.
                last.setdefault("tool_calls", []).append(call)
                if not last.get("content"):
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": _tool_output_text(item["output"])}
            )
    return messages


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(tools):
        if raw.get("type") != "function":
            raise InvalidRequest(
                f"Invalid request: tools.{index}: tool type {raw.get('type')!r} is not supported; only function tools.",
                param=f"tools.{index}",
            )
        try:
            tool = FunctionTool.model_validate(raw)
        except ValidationError as exc:
            raise first_error(exc, raw) from None
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = (
            tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
        )
        if tool.strict is not None:
            function["strict"] = tool.strict
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest("Invalid request: tool_choice must be auto, none or required.", param="tool_choice")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "Invalid request: tool_choice: only auto, none, required or {type: function, name} are supported.",
        param="tool_choice",
    )


def _response_format(fmt: TextFormat) -> dict[str, Any] | None:
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.name is None or fmt.schema_ is None:
        raise InvalidRequest(
            "Invalid request: text.format: json_schema needs a name and a schema.", param="text.format"
        )
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        schema["description"] = fmt.description
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


def to_chat_body(request: ResponsesRequest, conversation: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completions body for ``request`` over ``conversation`` (all input items, history first).

    ``instructions`` are the request's own: as with OpenAI, those of a previous response are not
    carried over."""
    messages = items_to_messages(conversation)
    if request.instructions:
        messages.insert(0, {"role": "system", "content": request.instructions})
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        body["tools"] = _chat_tools(request.tools)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None and request.tools:
        body["tool_choice"] = _chat_tool_choice(request.tool_choice)
    if request.text is not None and request.text.format is not None:
        response_format = _response_format(request.text.format)
        if response_format is not None:
            body["response_format"] = response_format
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.user is not None:
        body["user"] = request.user
    if request.stream:
        body["stream"] = True
    return body
