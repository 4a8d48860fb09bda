"""OpenAI Responses API: ``/v1/responses`` (create, get, delete, input_items, input_tokens).

There is no ``cancel``: Bastion runs no background responses, so a response is over by the time
its id is known.

A request is translated to the chat shape (``bastion/responses/request.py``) and runs the same
pipeline as ``/v1/chat/completions`` (auth, guard, limits, ledger, vault prompts); the chat answer
or stream is translated back. Stored responses are the tenant's own (``bastion/responses/store.py``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.auth.principal import Permission
from bastion.dialects.extension import FIELD, parse_extension
from bastion.errors import InvalidRequest
from bastion.ledger.record import content_mode
from bastion.providers.base import ChatResponse
from bastion.responses.output import finish, new_response_id, output_from_completion, skeleton, usage_object
from bastion.responses.request import normalize_input, to_chat_body, validate_responses_request
from bastion.responses.store import ResponseStore
from bastion.responses.stream import response_events
from bastion.usage import count_messages, count_tools


def _store(request: Request) -> ResponseStore:
    return gateway(request).services.responses


def _sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def _encode(
    events: AsyncGenerator[dict[str, Any], None], chunks: AsyncIterator[Any]
) -> AsyncGenerator[bytes, None]:
    try:
        async for event in events:
            yield _sse(event)
    finally:
        await events.aclose()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def create_response(request: Request) -> Answer:
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    parsed = validate_responses_request(body)
    store = _store(request)
    history: list[dict[str, Any]] = []
    if parsed.previous_response_id is not None:
        principal = await authenticate_request(request, Permission.CALL_MODELS)
        history = (await store.continuation(principal.tenant_id, parsed.previous_response_id)).items
    new_items = normalize_input(parsed.input)
    conversation = [*history, *new_items]
    if not conversation and not parsed.model.startswith("prompt:"):
        raise InvalidRequest("Invalid request: input: must contain at least one item", param="input")
    chat_body = to_chat_body(parsed, conversation)
    ctx = new_context(request, "openai", "chat", chat_body, parsed.model)
    ctx.stream = bool(parsed.stream)
    ctx.include_usage = True
    ctx.extension = parse_extension(body.get(FIELD))
    response_id = new_response_id()
    ctx.ledger_extra = {"api": "responses", "response_id": response_id}
    keep = parsed.store is not False
    response = skeleton(parsed, response_id, parsed.model, keep)

    async def remember(finished: dict[str, Any]) -> None:
        if keep and ctx.principal is not None:
            mode = content_mode(ctx.principal, gw.settings.ledger.default_mode)
            await store.save(ctx.principal.tenant_id, finished, conversation, mode)

    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.chat(ctx)
            if isinstance(result, ChatResponse):
                output, finish_reason = output_from_completion(result.body)
                usage = result.usage
                finish(
                    response,
                    output,
                    finish_reason,
                    usage_object(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) if usage else None,
                )
                await remember(response)
    except ClientDisconnected:
        return Response(status_code=499)
    headers = ctx.response_headers
    if isinstance(result, ChatResponse):
        return json_response(response, headers=headers)
    return SSEResponse(_encode(response_events(result, response, remember), result), headers=headers)


async def _tenant(request: Request) -> str:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    return principal.tenant_id


async def get_response(request: Request) -> Response:
    tenant_id = await _tenant(request)
    return json_response(await _store(request).get(tenant_id, request.path_params["response_id"]))


async def delete_response(request: Request) -> Response:
    tenant_id = await _tenant(request)
    response_id = request.path_params["response_id"]
    await _store(request).delete(tenant_id, response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid request: {name} must be an integer.", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid request: {name} must be between {low} and {high}.", param=name)
    return value


async def list_input_items(request: Request) -> Response:
    tenant_id = await _tenant(request)
    limit = _query_int(request, "limit", 20, 1, 100)
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid request: order must be asc or desc.", param="order")
    items = await _store(request).input_items(tenant_id, request.path_params["response_id"])
    if order == "desc":
        items.reverse()
    after = request.query_params.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"Invalid request: no input item with id {after!r}.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


async def count_input_tokens(request: Request) -> Response:
    """``POST /v1/responses/input_tokens``: the request's input counted with Bastion's tokenizer.

    Exact for the embedded model (its own vocabulary); for other models an estimate (docs/RESPONSES.md)."""
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    if isinstance(body, dict) and "model" not in body:
        body = {**body, "model": "default"}  # the model is optional here
    parsed = validate_responses_request({**body, "stream": False} if isinstance(body, dict) else body)
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    history: list[dict[str, Any]] = []
    if parsed.previous_response_id is not None:
        history = (await _store(request).continuation(principal.tenant_id, parsed.previous_response_id)).items
    chat_body = to_chat_body(parsed, [*history, *normalize_input(parsed.input)])
    tokens = count_messages(chat_body["messages"])
    if chat_body.get("tools"):
        tokens += count_tools(chat_body["tools"])
    return json_response({"object": "response.input_tokens", "input_tokens": tokens})


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
