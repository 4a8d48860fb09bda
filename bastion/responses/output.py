"""Response objects: the skeleton every answer starts from, and a chat completion as a Response.

A chat answer's text becomes one ``message`` output item with one ``output_text`` part, and each
tool call a ``function_call`` item (the call's id is the item's ``call_id``). ``finish_reason``
``length`` makes the response ``incomplete`` (``max_output_tokens``), ``content_filter`` too
(``content_filter``): OpenAI's two reasons.
"""

from __future__ import annotations

import time
from typing import Any

from bastion.responses.request import ResponsesRequest, new_item_id


def new_response_id() -> str:
    return new_item_id("resp")


def usage_object(
    prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
) -> dict[str, Any]:
    """The Responses ``usage``; prompt-cache reads and writes (an Anthropic upstream's) are part
    of ``input_tokens``."""
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": cache_write_tokens},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _tools_echo(request: ResponsesRequest) -> list[dict[str, Any]]:
    tools = []
    for tool in request.tools or ():
        echo = {
            "type": "function",
            "name": tool.get("name"),
            "description": tool.get("description"),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            "strict": tool.get("strict", True),
        }
        tools.append(echo)
    return tools


def _text_echo(request: ResponsesRequest) -> dict[str, Any]:
    fmt = request.text.format if request.text is not None else None
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}}
    if fmt.type == "json_object":
        return {"format": {"type": "json_object"}}
    echo: dict[str, Any] = {"type": "json_schema", "name": fmt.name, "schema": fmt.schema_, "strict": bool(fmt.strict)}
    if fmt.description is not None:
        echo["description"] = fmt.description
    return {"format": echo}


def skeleton(request: ResponsesRequest, response_id: str, model: str, store: bool) -> dict[str, Any]:
    """A Response ``in_progress``, echoing the request's settings, with no output yet."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "store": store,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": _text_echo(request),
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": _tools_echo(request),
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": "disabled",
        "metadata": request.metadata or {},
    }
    if request.user is not None:
        response["user"] = request.user
    return response


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def finish(
    response: dict[str, Any], output: list[dict[str, Any]], finish_reason: str | None, usage: dict[str, Any] | None
) -> dict[str, Any]:
    """``response`` completed (or incomplete, by ``finish_reason``) with ``output`` and ``usage``."""
    response["output"] = output
    if usage is not None:
        response["usage"] = usage
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    response["completed_at"] = int(time.time())
    return response


def output_from_completion(completion: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A ``chat.completion``'s first choice as output items, and its finish reason."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] or {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    if isinstance(text, str) and text:
        output.append(message_item(new_item_id("msg"), text))
    elif isinstance(refusal, str) and refusal:
        item = message_item(new_item_id("msg"), "")
        item["content"] = [{"type": "refusal", "refusal": refusal}]
        output.append(item)
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_item_id("fc"),
                str(call.get("id") or new_item_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    if not output:
        output.append(message_item(new_item_id("msg"), ""))
    return output, choice.get("finish_reason")


def failed(response: dict[str, Any], message: str, code: str = "server_error") -> dict[str, Any]:
    response["status"] = "failed"
    response["error"] = {"code": code, "message": message}
    return response
