"""OpenAI's legacy text completions: /v1/completions, answered through the chat pipeline.

Each prompt is one chat request through ``Pipeline.chat`` (auth, guard, limits, ledger: one ledger
row per prompt), so a list of prompts is answered prompt by prompt, in order; a stream sends each
prompt's chunks in turn (``choices[].index`` says which).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import gateway, new_context, request_id
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.dialects.completions import (
    chat_body,
    completion_choices,
    completion_chunks,
    completion_object,
    validate_completion_request,
)
from bastion.dialects.extension import FIELD, parse_extension
from bastion.dialects.openai import DONE, error_event, sse
from bastion.errors import BastionError
from bastion.gateway.context import RequestContext
from bastion.gateway.service import Gateway
from bastion.gateway.stage import Chunks
from bastion.providers.base import ChatResponse, Usage


def _context(request: Request, raw: dict[str, Any], prompt: str, index: int, stream: bool) -> RequestContext:
    ctx = new_context(request, "openai", "chat", chat_body(raw, prompt, stream=stream), raw["model"])
    if index:  # every prompt is an interaction of its own (its own ledger row and usage)
        ctx.request_id = f"{ctx.request_id}_{index}"
    ctx.stream = stream
    ctx.text_completion = True
    ctx.extension = parse_extension(raw.get(FIELD))
    ctx.ledger_extra = {"api": "completions"}
    return ctx


async def _open_stream(gw: Gateway, ctx: RequestContext) -> Chunks:
    result = await gw.pipeline.chat(ctx)
    assert not isinstance(result, ChatResponse)  # ctx.stream is set
    return result


async def _stream(
    gw: Gateway, request: Request, raw: dict[str, Any], prompts: list[str], first: Chunks, include_usage: bool, n: int
) -> AsyncGenerator[bytes, None]:
    completion = request_id(request)
    usage = Usage()
    try:
        for index, prompt in enumerate(prompts):
            chunks = first if index == 0 else await _open_stream(gw, _context(request, raw, prompt, index, True))
            async for chunk in completion_chunks(chunks, completion, raw["model"], index * n):
                if not chunk["choices"]:  # the usage chunk: one, summed, at the end
                    counted = Usage.from_openai(chunk.get("usage"))
                    if counted is not None:
                        usage.prompt_tokens += counted.prompt_tokens
                        usage.completion_tokens += counted.completion_tokens
                    continue
                yield sse(chunk)
    except BastionError as exc:
        yield error_event(exc)
        return
    if include_usage:
        yield sse(completion_object(completion, raw["model"], [], usage.to_openai()))
    yield DONE


async def completions(request: Request) -> Answer:
    gw = gateway(request)
    raw = await read_json(request, gw.settings.server.max_body_bytes)
    parsed, prompts = validate_completion_request(raw)
    stream = bool(parsed.stream)
    n = parsed.n or 1
    try:
        async with CancelOnDisconnect(request.receive):
            if stream:
                # The first prompt's stream starts here, so its errors (auth, limits, a bad
                # parameter) are still an HTTP error status rather than an error event.
                ctx = _context(request, raw, prompts[0], 0, True)
                first = await _open_stream(gw, ctx)
                include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
                events = _stream(gw, request, raw, prompts, first, include_usage, n)
                return SSEResponse(events, headers=ctx.response_headers)
            choices: list[dict[str, Any]] = []
            usage = Usage()
            headers: dict[str, str] | None = None
            for index, prompt in enumerate(prompts):
                ctx = _context(request, raw, prompt, index, False)
                result = await gw.pipeline.chat(ctx)
                assert isinstance(result, ChatResponse)
                choices += completion_choices(result.body, index * n)
                counted = result.usage or Usage.from_openai(result.body.get("usage"))
                if counted is not None:
                    usage.prompt_tokens += counted.prompt_tokens
                    usage.completion_tokens += counted.completion_tokens
                headers = ctx.response_headers
    except ClientDisconnected:
        return Response(status_code=499)
    body = completion_object(request_id(request), raw["model"], choices, usage.to_openai())
    return json_response(body, headers=headers)


routes = [
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/completions", completions, methods=["POST"]),
]
