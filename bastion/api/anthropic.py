"""Anthropic-compatible endpoints: /v1/messages, translated to and from the internal OpenAI shape,
and /v1/messages/count_tokens."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context, upstream_model_header
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.auth.principal import Permission
from bastion.dialects.anthropic import (
    AnthropicStreamEncoder,
    error_event,
    openai_response_to_anthropic,
    parse_anthropic_request,
)
from bastion.dialects.extension import FIELD, parse_extension
from bastion.errors import BastionError, UpstreamError
from bastion.providers.base import ChatRequest, ChatResponse, ChunkStream, Usage
from bastion.usage import count_messages, count_tools

log = structlog.get_logger("bastion.gateway")


async def _encode_stream(
    chunks: ChunkStream, model: str, message_id: str, stop_sequences: list[str]
) -> AsyncGenerator[bytes, None]:
    encoder = AnthropicStreamEncoder(model, message_id, stop_sequences=stop_sequences)
    usage = None
    try:
        async for chunk in chunks:
            if chunk.get("usage"):
                usage = Usage.from_openai(chunk["usage"])
            event = encoder.encode(chunk)
            if event:
                yield event
    except BastionError as exc:
        yield error_event(exc)
        return
    finally:
        await chunks.aclose()
    yield encoder.finish(usage)


async def messages(request: Request) -> Answer:
    gw = gateway(request)
    raw = await read_json(request, gw.settings.server.max_body_bytes)
    body, info = parse_anthropic_request(raw)
    ctx = new_context(request, "anthropic", "chat", body, info["model"])
    ctx.stream = bool(info.get("stream"))
    ctx.extension = parse_extension(raw.get(FIELD))
    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.chat(ctx)
    except ClientDisconnected:
        return Response(status_code=499)
    message_id = "msg_" + ctx.request_id.removeprefix("req_")
    # Stages' response headers (x-ratelimit-*); error responses carry them on the exception.
    headers = {**(upstream_model_header(ctx) or {}), "request-id": ctx.request_id}
    if isinstance(result, ChatResponse):
        answer = openai_response_to_anthropic(result.body, info["model"], info["stop_sequences"])
        return json_response(answer, headers=headers)
    return SSEResponse(_encode_stream(result, info["model"], message_id, info["stop_sequences"]), headers=headers)


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": N}`` for a Messages request (system, messages, tools), without answering it.

    Exact where Bastion has the deployment's tokenizer: the local model's own, or the upstream's
    counting endpoint for an Anthropic deployment; otherwise Bastion's documented estimate
    (``bastion/usage``). ``x-bastion-token-count`` says which (``exact`` / ``estimate``). It needs
    ``models:call`` and a model the caller may use, but it is not a completion: no ledger row, no
    rate-limit slot (clients such as Claude Code count before every turn; the count costs no
    model tokens)."""
    await authenticate_request(request, Permission.CALL_MODELS)
    gw = gateway(request)
    raw = await read_json(request, gw.settings.server.max_body_bytes)
    if isinstance(raw, dict):
        raw.pop("max_tokens", None)  # not part of a count request; the parser wants one
        raw = {**raw, "max_tokens": 1}
    body, info = parse_anthropic_request(raw)
    counted: int | None = None
    try:
        counted = await gw.router.count_tokens(ChatRequest(body=body, request_id=""), info["model"])
    except UpstreamError as exc:
        # The upstream's counter failed: the estimate still answers the question.
        log.warning("token_count_fell_back", model=info["model"], error=exc.message)
    if counted is None:
        counted = count_messages(body["messages"]) + count_tools(body.get("tools"))
        method = "estimate"
    else:
        method = "exact"
    return json_response({"input_tokens": counted}, headers={"x-bastion-token-count": method})


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
