"""OpenAI's own Responses API, for deployments with ``responses: native``.

The client's Responses body goes to ``{api_base}/responses`` as sent (the model renamed to the
deployment's), through the provider's pooled client, key, headers, timeouts and error mapping.
The answer is relayed as the upstream sent it; what the gateway's stages need (text, tool calls,
finish reason, usage) is read from it into the chat shape they work on:

- a complete Response becomes a ``ChatResponse`` whose ``native`` is the Response itself;
- each stream event becomes a ``chat.completion.chunk`` carrying the event under ``NATIVE_EVENT``
  (text deltas as content, the final event's usage as usage), so usage, limits and the ledger work
  unchanged and the HTTP layer relays the events themselves.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.errors import UpstreamError
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Usage
from bastion.providers.http import TRANSPORT_ERRORS, iter_sse_data, transport_error
from bastion.providers.http_provider import HTTPProvider

RESPONSES_PATH = "/responses"
INPUT_TOKENS_PATH = "/responses/input_tokens"
#: The key of a chunk that carries a passed-through Responses stream event.
NATIVE_EVENT = "bastion_responses_event"
#: Events after which the upstream sends nothing more.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
#: What OpenAI's counting endpoint takes of a Responses request (it refuses generation settings).
_COUNTED_FIELDS = (
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "truncation",
    "conversation",
)


def _payload(provider: HTTPProvider, body: dict[str, Any], stream: bool) -> bytes:
    sent = {key: value for key, value in body.items() if key not in ("stream", "stream_options")}
    sent["model"] = provider.deployment.model
    if stream:
        sent["stream"] = True
    return orjson.dumps(sent)


def usage_from_response(usage: Any) -> Usage | None:
    """The Responses ``usage`` (input_tokens, output_tokens, cached input) as Bastion's ``Usage``."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0),
        completion_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def output_text(response: dict[str, Any]) -> str:
    """The text of a Response's message items (what the SDK's ``output_text`` joins)."""
    return "".join(
        str(part.get("text") or "")
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def _finish_reason(response: dict[str, Any], called_tools: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if called_tools else "stop"


def chat_body(response: dict[str, Any]) -> dict[str, Any]:
    """A Response read as a ``chat.completion``: its text, tool calls, finish reason and usage."""
    calls = [
        {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
        }
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type") == "function_call"
    ]
    text = output_text(response)
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(response, bool(calls))}],
    }
    usage = usage_from_response(response.get("usage"))
    if usage is not None:
        body["usage"] = usage.to_openai()
    return body


async def create(provider: HTTPProvider, request: ChatRequest) -> ChatResponse:
    """``POST /responses`` with the client's body; the upstream's Response, relayed."""
    assert request.passthrough is not None
    data = await provider.read_json(await provider.post(RESPONSES_PATH, _payload(provider, request.passthrough, False)))
    if data.get("object") != "response" or not isinstance(data.get("output"), list):
        if "error" in data:
            raise provider.errors.reported(data, mid_stream=False, retryable=True)
        raise UpstreamError(f"{provider.label} sent a Responses answer that is not a response")
    return ChatResponse(body=chat_body(data), usage=usage_from_response(data.get("usage")), native=data)


def _chunk(event: dict[str, Any]) -> dict[str, Any]:
    """One stream event as a chat chunk that carries it."""
    chunk: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [], NATIVE_EVENT: event}
    kind = event.get("type")
    if kind == "response.output_text.delta":
        chunk["choices"] = [{"index": 0, "delta": {"content": str(event.get("delta") or "")}, "finish_reason": None}]
    elif kind == "response.output_item.done" and (event.get("item") or {}).get("type") == "function_call":
        item = event["item"]
        call = {"index": 0, "id": item.get("call_id"), "type": "function"}
        call["function"] = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
        chunk["choices"] = [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]
    elif kind in ("response.completed", "response.incomplete"):
        response = event.get("response") or {}
        called = any(isinstance(i, dict) and i.get("type") == "function_call" for i in response.get("output") or ())
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": _finish_reason(response, called)}]
        usage = usage_from_response(response.get("usage"))
        if usage is not None:
            chunk["usage"] = usage.to_openai()
    return chunk


async def stream(provider: HTTPProvider, request: ChatRequest) -> ChunkStream:
    """``POST /responses`` streamed; each upstream event, in order, inside a chat chunk."""
    assert request.passthrough is not None
    response = await provider.post(RESPONSES_PATH, _payload(provider, request.passthrough, True))
    done = False
    try:
        async for _event, data in iter_sse_data(response):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError(f"{provider.label} sent a malformed stream event") from None
            if not isinstance(event, dict):
                raise UpstreamError(f"{provider.label} sent a stream event that is not an object")
            kind = event.get("type")
            if kind == "error" or kind == "response.failed":
                # Relayed as sent would quote whatever the upstream said: map and scrub it instead.
                failure = (event.get("response") or {}).get("error") if kind == "response.failed" else event
                raise provider.errors.reported({"error": failure or {}}, mid_stream=True)
            yield _chunk(event)
            if kind in TERMINAL_EVENTS:
                done = True
                break
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, provider.label) from None
    finally:
        provider.close_stream(response, finished=done)
    if not done:
        raise UpstreamError(f"{provider.label} ended the stream early")


async def count_input_tokens(provider: HTTPProvider, request: ChatRequest) -> int:
    """``POST /responses/input_tokens``: the upstream's exact count of the client's request."""
    assert request.passthrough is not None
    body = {key: value for key, value in request.passthrough.items() if key in _COUNTED_FIELDS}
    body["model"] = provider.deployment.model
    response = await provider.post(INPUT_TOKENS_PATH, orjson.dumps(body))
    data = await provider.within_total_timeout(provider.read_json(response))
    tokens = data.get("input_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise UpstreamError(f"{provider.label} answered the token count without input_tokens")
    return tokens
