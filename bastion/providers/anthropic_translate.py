"""Translation between the internal OpenAI chat-completions shape and Anthropic's native Messages
API, for the Anthropic provider: request out, response and stream events back.

Carried across when present (see ``bastion.dialects.anthropic``): ``cache_control`` on system
parts, content parts, tools, tool calls, tool messages and the body; ``is_error`` on tool
messages; ``top_k``.

Knowingly dropped, because Anthropic has no equivalent: ``response_format`` (Anthropic would need
its own structured-output configuration; the prompt is expected to ask for JSON), ``n``, ``seed``,
``frequency_penalty``, ``presence_penalty``, ``logprobs``, ``logit_bias``, ``reasoning_effort``,
message ``name``s, legacy ``functions``; thinking blocks in answers.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bastion.errors import InvalidRequest, UpstreamError
from bastion.providers.anthropic_common import (
    STOP_SEQUENCE,
    completion_id_for,
    openai_finish_reason,
    openai_usage,
    parse_data_url,
    tool_input,
)
from bastion.providers.upstream_errors import UpstreamErrors

#: Anthropic requires ``max_tokens``; used when the OpenAI request names no limit.
DEFAULT_MAX_TOKENS = 4096

# --- request: OpenAI -> Anthropic ----------------------------------------------------------------


def openai_to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as an Anthropic Messages request for ``model`` (no ``stream``)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            # Anthropic has one system prompt, so every system message joins it, in order.
            system.extend(_text_blocks(message, where))
        elif role == "user":
            _append(turns, "user", _user_blocks(message, where))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, where))
        elif role in ("tool", "function"):
            _append(turns, "user", [_tool_result(message, where)])
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
    turns = [turn for turn in turns if turn["content"]]
    if turns and turns[-1]["role"] == "assistant":
        _trim_prefill(turns[-1]["content"])

    out: dict[str, Any] = {"model": model, "messages": [_compact(turn) for turn in turns]}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
    if system:
        if len(system) == 1 and "cache_control" not in system[0]:
            out["system"] = system[0]["text"]
        else:
            out["system"] = system
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    temperature = body.get("temperature")
    if isinstance(temperature, int | float):
        # OpenAI's range is 0-2, Anthropic's 0-1: clamp rather than fail a call that failed over.
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    for name in ("top_p", "top_k", "cache_control"):
        if body.get(name) is not None:
            out[name] = body[name]
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    return out


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Consecutive same-role turns are merged: strict Anthropic-compatible servers require
    # alternation, and tool results (each its own OpenAI message) must share one user turn.
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _compact(turn: dict[str, Any]) -> dict[str, Any]:
    content = turn["content"]
    if len(content) == 1 and content[0]["type"] == "text" and "cache_control" not in content[0]:
        return {"role": turn["role"], "content": content[0]["text"]}
    return turn


def _trim_prefill(blocks: list[dict[str, Any]]) -> None:
    # Anthropic refuses a final (prefilled) assistant turn that ends in whitespace.
    last = blocks[-1]
    if last["type"] == "text":
        last["text"] = last["text"].rstrip()
        if not last["text"]:
            blocks.pop()


def _with_cache(block: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    if isinstance(source.get("cache_control"), dict):
        block["cache_control"] = source["cache_control"]
    return block


def _message_cache(blocks: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    # LiteLLM also accepts ``cache_control`` on a whole message: it marks the message's last block.
    if blocks and isinstance(message.get("cache_control"), dict) and "cache_control" not in blocks[-1]:
        blocks[-1]["cache_control"] = message["cache_control"]
    return blocks


def _text_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        blocks = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(f"{where}.content.{j} must be a text part", param=f"{where}.content.{j}")
            if part.get("text"):
                blocks.append(_with_cache({"type": "text", "text": part["text"]}, part))
    else:
        blocks = []
    return _message_cache(blocks, message)


def _user_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        text = content if isinstance(content, str) else ""
        return _message_cache([{"type": "text", "text": text}], message)
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        block = _user_part(part, f"{where}.content.{j}")
        if block is not None:
            blocks.append(block)
    return _message_cache(blocks, message)


def _user_part(part: Any, where: str) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        return _with_cache({"type": "text", "text": text}, part) if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url.url is required", param=f"{where}.image_url.url")
        if url.startswith("data:"):
            decoded = parse_data_url(url)
            if decoded is None:
                raise InvalidRequest(f"{where}: image data URLs must be base64", param=f"{where}.image_url.url")
            source: dict[str, Any] = {"type": "base64", "media_type": decoded[0], "data": decoded[1]}
        else:
            source = {"type": "url", "url": url}
        return _with_cache({"type": "image", "source": source}, part)
    if kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        decoded = parse_data_url(file.get("file_data") or "")
        if decoded is None:
            raise InvalidRequest(
                f"{where}: only inline (base64 file_data) files can be sent to Anthropic", param=f"{where}.file"
            )
        block: dict[str, Any] = {
            "type": "document",
            "source": {"type": "base64", "media_type": decoded[0], "data": decoded[1]},
        }
        if isinstance(file.get("filename"), str) and file["filename"]:
            block["title"] = file["filename"]
        return _with_cache(block, part)
    raise InvalidRequest(f"{where}: {kind or 'untyped'} content is not supported by Anthropic", param=where)


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text") if part.get("type") == "text" else part.get("refusal")
            if isinstance(text, str) and text:
                blocks.append(_with_cache({"type": "text", "text": text}, part))
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        blocks.append({"type": "text", "text": message["refusal"]})
    blocks = _message_cache(blocks, message)
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        block = {
            "type": "tool_use",
            "id": call.get("id") or "",
            "name": function.get("name") or "",
            "input": tool_input(function.get("arguments")),
        }
        blocks.append(_with_cache(block, call))
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_use_id = message.get("tool_call_id") or message.get("name")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = message.get("content")
    if isinstance(content, list):
        parts = [
            _with_cache({"type": "text", "text": part["text"]}, part)
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and part.get("text")
        ]
        if parts:
            block["content"] = parts
    elif isinstance(content, str) and content:
        block["content"] = content
    if message.get("is_error") is True:
        block["is_error"] = True
    return _with_cache(block, message)


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise InvalidRequest(f"{where}: only function tools can be sent to Anthropic", param=f"{where}.type")
    function = tool.get("function") or {}
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise InvalidRequest(f"{where}.function.name is required", param=f"{where}.function.name")
    schema = function.get("parameters")
    out: dict[str, Any] = {
        "name": function["name"],
        # Anthropic requires a schema; OpenAI allows none for argument-less functions.
        "input_schema": schema if isinstance(schema, dict) else {"type": "object", "properties": {}},
    }
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(function.get("strict"), bool):
        out["strict"] = function["strict"]
    return _with_cache(out, tool)


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        out: dict[str, Any] = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    elif choice in (None, "auto") or isinstance(choice, dict):
        if parallel is not False:
            return None if choice is None else {"type": "auto"}
        out = {"type": "auto"}
    else:
        return None
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# --- response: Anthropic -> OpenAI ---------------------------------------------------------------


def _tool_call(block: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": block.get("id") or "",
        "type": "function",
        "function": {"name": block.get("name") or "", "arguments": orjson.dumps(block.get("input") or {}).decode()},
    }
    if index is not None:
        call = {"index": index, **call}
    return call


def anthropic_to_openai_response(data: dict[str, Any], model: str, upstream: str) -> dict[str, Any]:
    """An Anthropic Message as an OpenAI ``chat.completion``. Thinking blocks are dropped."""
    content = data.get("content")
    if not isinstance(content, list):
        raise UpstreamError(f"{upstream} sent a response without content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(_tool_call(block))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": openai_finish_reason(data.get("stop_reason")),
        "logprobs": None,
    }
    if data.get("stop_reason") == "stop_sequence" and isinstance(data.get("stop_sequence"), str):
        choice[STOP_SEQUENCE] = data["stop_sequence"]
    return {
        "id": completion_id_for(data.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or model,
        "choices": [choice],
        "usage": openai_usage(data.get("usage")),
    }


class AnthropicStreamTranslator:
    """Anthropic stream events -> OpenAI chunks. ``done`` turns true at ``message_stop``, which
    yields the ``finish_reason`` chunk and then a usage chunk (``choices: []``), as OpenAI does
    with ``stream_options.include_usage``."""

    def __init__(self, model: str, upstream: str, errors: UpstreamErrors | None = None) -> None:
        self.model = model
        self.upstream = upstream
        #: Maps an ``error`` event; the provider's knows its deployment's credentials.
        self.errors = errors or UpstreamErrors(upstream)
        self.id = completion_id_for(None)
        self.created = int(time.time())
        self.done = False
        #: Anthropic content-block index -> OpenAI tool-call index.
        self._tools: dict[int, int] = {}
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = completion_id_for(message.get("id"))
            self.model = message.get("model") or self.model
            self._merge_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                self._stop_reason = delta["stop_reason"]
            if isinstance(delta.get("stop_sequence"), str):
                self._stop_sequence = delta["stop_sequence"]
            self._merge_usage(event.get("usage"))  # cumulative counts: later values win
            return []
        if kind == "message_stop":
            self.done = True
            finish = self._chunk({}, openai_finish_reason(self._stop_reason))
            if self._stop_reason == "stop_sequence" and self._stop_sequence is not None:
                finish["choices"][0][STOP_SEQUENCE] = self._stop_sequence
            usage = {**self._chunk({}), "choices": [], "usage": openai_usage(self._usage)}
            return [finish, usage]
        if kind == "error":
            raise self.errors.reported(event, mid_stream=True)
        return []  # ping, content_block_stop and event types added later carry nothing we need

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") == "tool_use":
            position = len(self._tools)
            self._tools[event.get("index", position)] = position
            call = _tool_call(block, position)
            if not block.get("input"):
                # Arguments follow as input_json_delta events; an empty input would read "{}".
                call["function"]["arguments"] = ""
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and server-tool blocks are dropped

    def _block_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json"):
            position = self._tools.get(event.get("index", -1))
            if position is not None:
                arguments = {"index": position, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [arguments]})]
        return []
