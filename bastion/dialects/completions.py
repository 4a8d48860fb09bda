"""OpenAI's legacy text completions (``POST /v1/completions``) in terms of the chat shape.

A completion request becomes one chat request per prompt (the prompt as the user message), so it
goes through the same pipeline as chat and works on every chat model; the local model completes
the raw text instead of a chat turn (``ChatRequest.text_completion``). Answers go back as
``text_completion`` objects, streamed or not (OpenAI uses the same object for both).

What Bastion does not do is refused by name rather than ignored: ``echo``, ``best_of`` above 1,
``suffix`` (insertion) and ``logprobs``; token-id prompts get a 400 that says to send text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.dialects.extension import FIELD
from bastion.dialects.openai_schema import StreamOptions, parse_object
from bastion.errors import InvalidRequest

#: OpenAI's default for ``max_tokens`` on this endpoint (chat has none).
DEFAULT_MAX_TOKENS = 16
#: Request fields forwarded to the chat request as they are.
_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)
_FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class CompletionRequest(BaseModel):
    """The fields of ``CreateCompletionRequest`` Bastion reads; others are accepted and dropped."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: Annotated[str, Field(min_length=1, max_length=256)]
    prompt: (
        str
        | Annotated[list[str], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1)]
    )
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, int | float] | None = None
    user: str | None = None
    echo: bool | None = None
    best_of: Annotated[int, Field(ge=0, le=20)] | None = None
    suffix: str | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    #: Bastion's own extension (prompt vault reference and variables); never sent upstream.
    bastion: dict[str, Any] | None = None


def validate_completion_request(body: Any) -> tuple[CompletionRequest, list[str]]:
    """The validated request and its prompts (one chat request each), or a 400 naming the field."""
    request = parse_object(CompletionRequest, body)
    if request.echo:
        raise InvalidRequest(
            "Invalid request: echo is not supported; send echo: false (or leave it out).", param="echo"
        )
    if request.best_of is not None and request.best_of > 1:
        raise InvalidRequest("Invalid request: best_of is not supported; leave it out or send 1.", param="best_of")
    if request.suffix:
        raise InvalidRequest("Invalid request: suffix (insertion) is not supported; leave it out.", param="suffix")
    if request.logprobs:
        raise InvalidRequest(
            "Invalid request: logprobs is not supported on /v1/completions; leave it out.", param="logprobs"
        )
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "Invalid request: stream_options is only allowed when stream is true", param="stream_options"
        )
    prompt = request.prompt
    if isinstance(prompt, str):
        prompts = [prompt]
    elif all(isinstance(item, str) for item in prompt):
        prompts = [item for item in prompt if isinstance(item, str)]
    else:
        raise InvalidRequest(
            "Invalid request: prompt as token ids is not supported (Bastion serves models of several "
            "tokenizers); send the prompt as text.",
            param="prompt",
        )
    if not any(prompts):
        raise InvalidRequest("Invalid request: prompt must contain some text.", param="prompt")
    return request, prompts


def chat_body(body: dict[str, Any], prompt: str, *, stream: bool) -> dict[str, Any]:
    """The chat-completions body that answers ``prompt`` with the completion request's settings."""
    chat: dict[str, Any] = {"model": body["model"], "messages": [{"role": "user", "content": prompt}]}
    chat["max_tokens"] = body.get("max_tokens") or DEFAULT_MAX_TOKENS
    for name in _CHAT_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    if stream:
        chat["stream"] = True
    return chat


def completion_id(request_id: str) -> str:
    return "cmpl-" + request_id.removeprefix("req_")


def _finish_reason(reason: Any) -> str:
    # Chat-only reasons (tool_calls, function_call) end the text as a natural stop would.
    return _FINISH_REASONS.get(str(reason), "stop")


def _message_text(choice: dict[str, Any]) -> str:
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some upstreams answer with content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def completion_choices(chat: dict[str, Any], first_index: int) -> list[dict[str, Any]]:
    """The ``text_completion`` choices of one prompt's chat answer, numbered from ``first_index``
    (a list of prompts with ``n`` answers each is numbered prompt by prompt, as OpenAI does)."""
    choices = [
        {
            "text": _message_text(choice),
            "index": first_index + int(choice.get("index") or 0),
            "logprobs": None,
            "finish_reason": _finish_reason(choice.get("finish_reason")),
        }
        for choice in chat.get("choices") or ()
    ]
    if isinstance(chat.get(FIELD), dict):
        # Bastion's answer field (sources and citations) belongs to the prompt: each prompt of a
        # list has its own, so it rides on that prompt's choices.
        for choice in choices:
            choice[FIELD] = chat[FIELD]
    return choices


def completion_object(
    request_id: str, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id(request_id),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


async def completion_chunks(
    chunks: AsyncIterator[dict[str, Any]], request_id: str, model: str, first_index: int
) -> AsyncGenerator[dict[str, Any], None]:
    """One prompt's chat chunks as ``text_completion`` chunks: a chunk per piece of text, the
    finish reason on the last choice chunk (``null`` before it, as OpenAI sends), and the usage
    chunk (``choices: []``) when the stream carries one."""
    created = int(time.time())
    head = {"id": completion_id(request_id), "object": "text_completion", "created": created, "model": model}
    async for chunk in chunks:
        extension = chunk.get(FIELD) if isinstance(chunk.get(FIELD), dict) else None
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta.get("content"), str) else ""
            reason = choice.get("finish_reason")
            if not text and reason is None and extension is None:
                continue  # the role chunk, tool-call deltas
            out: dict[str, Any] = {
                "text": text,
                "index": first_index + int(choice.get("index") or 0),
                "logprobs": None,
                "finish_reason": None if reason is None else _finish_reason(reason),
            }
            if extension is not None:
                out[FIELD] = extension
            yield {**head, "choices": [out]}
        if extension is not None and not chunk.get("choices"):
            # The field on a chunk of its own: an empty piece of the prompt's first choice.
            yield {
                **head,
                "choices": [
                    {"text": "", "index": first_index, "logprobs": None, "finish_reason": None, FIELD: extension}
                ],
            }
        if chunk.get("usage"):
            yield {**head, "choices": [], "usage": chunk["usage"]}
