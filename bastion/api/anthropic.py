"""Anthropic-compatible endpoint: /v1/messages, translated to and from the internal OpenAI shape."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import gateway, new_context, upstream_model_header
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.dialects.anthropic import (
    AnthropicStreamEncoder,
    error_event,
    openai_response_to_anthropic,
    parse_anthropic_request,
)
from bastion.dialects.extension import FIELD, parse_extension
from bastion.errors import BastionError
from bastion.providers.base import ChatResponse, ChunkStream, Usage


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


routes = [Route("/v1/messages", messages, methods=["POST"])]
