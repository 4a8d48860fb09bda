"""OpenAI Responses API: ``/v1/responses`` (create, get, delete, input_items, input_tokens).

There is no ``cancel``: Bastion runs no background responses, so a response is over by the time
its id is known.

A request is translated to the chat shape (``bastion/responses/request.py``) and runs the same
pipeline as ``/v1/chat/completions`` (auth, guard, limits, ledger, vault prompts); the chat answer
or stream is translated back. Stored responses are the tenant's own (``bastion/responses/store.py``).

For a model served by ``responses: native`` deployments the client's body also rides along
(``ctx.passthrough``): the deployment sends it to its upstream's ``/responses`` and the upstream's
Response or events are relayed (``bastion/responses/native.py``); ``previous_response_id`` and
``store`` are then the upstream's business and Bastion's store is not used.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.auth.principal import Permission
from bastion.dialects.extension import FIELD, parse_extension
from bastion.errors import InvalidRequest, UpstreamError
from bastion.ledger.record import content_mode
from bastion.providers.base import ChatRequest, ChatResponse
from bastion.responses.native import guarded, is_native_stream, passthrough_body, relay_events
from bastion.responses.output import finish, new_response_id, output_from_completion, skeleton, usage_object
from bastion.responses.request import normalize_input, to_chat_body, validate_responses_request
from bastion.responses.store import ResponseStore
from bastion.responses.stream import response_events
from bastion.usage import count_messages, count_tools

log = structlog.get_logger("bastion.api.responses")


def _store(request: Request) -> ResponseStore:
    return gateway(request).services.responses


def _sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _native_model(request: Request, model: str) -> bool:
    """Whether ``model`` is served by a deployment that passes Responses requests through."""
    group = gateway(request).router.groups.get(model)
    return group is not None and any(t.deployment.settings.responses == "native" for t in group.targets)


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


async def _prepended(first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[Any, None]:
    yield first
    async for chunk in chunks:
        yield chunk


async def _stream_events(
    chunks: AsyncIterator[dict[str, Any]],
    response: dict[str, Any],
    remember: Callable[[dict[str, Any]], Awaitable[None]],
) -> AsyncGenerator[dict[str, Any], None]:
    """The upstream's own events when a native deployment answered, else the translated ones.
    The stream is primed: its first chunk is already here."""
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = None
    rest = _prepended(first, chunks) if first is not None else chunks
    events = (
        relay_events(rest)
        if first is not None and is_native_stream(first)
        else response_events(rest, response, remember)
    )
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()


async def create_response(request: Request) -> Answer:
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    parsed = validate_responses_request(body)
    store = _store(request)
    native = _native_model(request, parsed.model)
    history: list[dict[str, Any]] = []
    # On a native model the id names the upstream's stored response: it is forwarded, not looked up.
    if parsed.previous_response_id is not None and not native:
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
    if native:
        ctx.passthrough = passthrough_body(body)
        ctx.ledger_extra["passthrough"] = True
    # A native model's upstream keeps (or not, per `store`) what it answered; Bastion keeps nothing.
    keep = parsed.store is not False and not native
    response = skeleton(parsed, response_id, parsed.model, keep)

    async def remember(finished: dict[str, Any]) -> None:
        if keep and ctx.principal is not None:
            mode = content_mode(ctx.principal, gw.settings.ledger.default_mode)
            await store.save(ctx.principal.tenant_id, finished, conversation, mode)

    try:
        async with CancelOnDisconnect(request.receive):
            result = await gw.pipeline.chat(ctx)
            if isinstance(result, ChatResponse) and result.native is None:
                output, finish_reason = output_from_completion(result.body)
                usage = result.usage
                finish(
                    response,
                    output,
                    finish_reason,
                    usage_object(
                        usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_creation_tokens
                    )
                    if usage
                    else None,
                )
                if isinstance(result.body.get(FIELD), dict):  # Bastion's answer field (sources, citations)
                    response[FIELD] = result.body[FIELD]
                await remember(response)
    except ClientDisconnected:
        return Response(status_code=499)
    headers = ctx.response_headers
    if isinstance(result, ChatResponse):
        if result.native is not None:
            return json_response(guarded(result.native, result.body), headers=headers)
        return json_response(response, headers=headers)
    return SSEResponse(_encode(_stream_events(result, response, remember), result), headers=headers)


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
    """``POST /v1/responses/input_tokens``: the request's input tokens.

    Exact where Bastion has the deployment's tokenizer: the embedded model's own, an Anthropic
    upstream's counter, a native OpenAI deployment's ``/responses/input_tokens``; otherwise (or when
    that counter fails) Bastion's estimate. ``x-bastion-token-count`` says which (docs/RESPONSES.md)."""
    gw = gateway(request)
    body = await read_json(request, gw.settings.server.max_body_bytes)
    if isinstance(body, dict) and "model" not in body:
        body = {**body, "model": "default"}  # the model is optional here
    parsed = validate_responses_request({**body, "stream": False} if isinstance(body, dict) else body)
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    native = _native_model(request, parsed.model)
    history: list[dict[str, Any]] = []
    if parsed.previous_response_id is not None and not native:
        history = (await _store(request).continuation(principal.tenant_id, parsed.previous_response_id)).items
    chat_body = to_chat_body(parsed, [*history, *normalize_input(parsed.input)])
    counted: int | None = None
    if parsed.model in gw.router.groups:
        passthrough = passthrough_body(body) if native else None
        try:
            counted = await gw.router.count_tokens(
                ChatRequest(body=chat_body, request_id="", passthrough=passthrough), parsed.model
            )
        except UpstreamError as exc:
            # The upstream's counter failed: the estimate still answers the question.
            log.warning("token_count_fell_back", model=parsed.model, error=exc.message)
    method = "estimate" if counted is None else "exact"
    if counted is None:
        counted = count_messages(chat_body["messages"])
        if chat_body.get("tools"):
            counted += count_tools(chat_body["tools"])
    return json_response(
        {"object": "response.input_tokens", "input_tokens": counted}, headers={"x-bastion-token-count": method}
    )


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
