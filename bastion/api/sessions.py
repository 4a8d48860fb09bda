"""Agent session API (seed 000): ``/api/v1/ai/sessions/*``, ``/api/v1/ai/chat`` and its SSE stream.

Every route authenticates like the admin API (API key or JWT) and needs ``models:call``. A session
is visible to its owner only: another user's, another key's or another tenant's ``agent_id``
answers 404, exactly like one that does not exist. A chat runs through the gateway pipeline as a
chat request on the session's pinned prompt version, so auth, limits, guard and ledger apply as
for /v1 calls. Errors use Bastion's JSON error shape. See docs/SESSIONS.md.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, new_context, request_id
from bastion.api.http import Answer, CancelOnDisconnect, ClientDisconnected, SSEResponse, json_response, read_json
from bastion.auth.principal import Permission, Principal
from bastion.dialects.errors import openai_error
from bastion.errors import BastionError, InvalidRequest
from bastion.gateway.context import RequestContext
from bastion.providers.base import ChatResponse, ChunkStream
from bastion.sessions.service import PreparedChat, SessionService, message_view, parse_agent_id, session_view

log = structlog.get_logger("bastion.sessions")

PREFIX = "/api/v1/ai"
DEFAULT_PAGE = 50
MAX_PAGE = 200
_MAX_TYPE_CHARS = 64


class SessionsUnavailable(BastionError):
    status = 503
    error_type = "overloaded_error"
    code = "sessions_unavailable"


Handler = Callable[[Request], Awaitable[Answer]]


def route(handler: Handler) -> Handler:
    """A database failure is a 503 the client may retry, never a 500."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Answer:
        try:
            return await handler(request)
        except SQLAlchemyError as exc:
            log.error("sessions_store_failed", error=type(exc).__name__, request_id=request_id(request))
            raise SessionsUnavailable("The session store is unavailable; try again shortly.") from None

    return wrapped


async def _caller(request: Request) -> tuple[Principal, SessionService]:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    return principal, gateway(request).services.sessions


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid request: the body must be a JSON object.")
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = True, max_chars: int | None = None) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"Invalid request: {name} must be a non-empty string.", param=name)
    if max_chars is not None and len(value) > max_chars:
        raise InvalidRequest(f"Invalid request: {name} must be at most {max_chars} characters.", param=name)
    return value


# -- sessions ------------------------------------------------------------------------------------


@route
async def start(request: Request) -> Response:
    principal, service = await _caller(request)
    body = await _object(request)
    prompt_id = _string(body, "prompt_id", max_chars=128)
    session_type = _string(body, "session_type", required=False, max_chars=_MAX_TYPE_CHARS) or "chat"
    context = body.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise InvalidRequest("Invalid request: context must be a JSON object.", param="context")
    label = _string(body, "label", required=False, max_chars=64)
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise InvalidRequest("Invalid request: version must be a positive integer.", param="version")
    if label is not None and version is not None:
        raise InvalidRequest("Invalid request: name a prompt label or a version, not both.", param="version")
    model = _string(body, "model", required=False, max_chars=256)
    assert prompt_id is not None
    row = await service.start_session(
        principal, prompt_id, session_type=session_type, context=context, label=label, version=version, model=model
    )
    return json_response({**session_view(row), "agent_id": row.agent_id, "expires_at": row.expires_at.isoformat()})


@route
async def end(request: Request) -> Response:
    principal, service = await _caller(request)
    body = await _object(request)
    row = await service.end_session(principal, parse_agent_id(body.get("agent_id")))
    return json_response(session_view(row))


@route
async def active(request: Request) -> Response:
    principal, service = await _caller(request)
    rows = await service.active(principal)
    return json_response({"object": "list", "data": [session_view(row) for row in rows]})


def _page_params(request: Request) -> tuple[int | None, int]:
    raw_limit = request.query_params.get("limit")
    raw_cursor = request.query_params.get("cursor")
    limit = DEFAULT_PAGE
    if raw_limit:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise InvalidRequest(f"Invalid request: limit must be 1 to {MAX_PAGE}.", param="limit")
        limit = int(raw_limit)
    cursor: int | None = None
    if raw_cursor:
        if not raw_cursor.isdigit() or len(raw_cursor) > 18:
            raise InvalidRequest("Invalid request: cursor must be a next_cursor from a previous page.", param="cursor")
        cursor = int(raw_cursor)
    return cursor, limit


@route
async def history(request: Request) -> Response:
    principal, service = await _caller(request)
    agent_id = parse_agent_id(request.path_params["agent_id"])
    cursor, limit = _page_params(request)
    row, messages, more = await service.history(principal, agent_id, cursor, limit)
    return json_response(
        {
            "object": "list",
            "agent_id": row.agent_id,
            "status": row.status,
            "data": [message_view(message) for message in messages],
            "next_cursor": str(messages[-1].id) if more and messages else None,
            "has_more": more,
        }
    )


# -- chat ----------------------------------------------------------------------------------------


async def _chat_input(request: Request) -> tuple[str, str]:
    if request.method == "GET":  # EventSource-style: the seed documents GET chat/stream
        data: dict[str, Any] = dict(request.query_params)
    else:
        data = await _object(request)
    agent_id = parse_agent_id(data.get("agent_id"))
    message = _string(data, "message")
    assert message is not None
    return agent_id, message


async def _run(
    request: Request, stream: bool
) -> tuple[PreparedChat, RequestContext, ChatResponse | ChunkStream, SessionService]:
    principal, service = await _caller(request)
    agent_id, message = await _chat_input(request)
    rid = request_id(request)
    chat = await service.prepare_chat(principal, agent_id, message, rid)
    ctx = new_context(request, "bastion", "chat", chat.body, chat.model)
    ctx.stream = stream
    ctx.extension = chat.extension
    ctx.session_id = chat.agent_id  # what the ledger records as the session
    async with CancelOnDisconnect(request.receive):
        result = await gateway(request).pipeline.chat(ctx)
    return chat, ctx, result, service


def _reply_text(response: ChatResponse) -> str:
    choices = response.body.get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else ""


@route
async def chat(request: Request) -> Response:
    try:
        prepared, ctx, result, service = await _run(request, stream=False)
    except ClientDisconnected:
        return Response(status_code=499)
    assert isinstance(result, ChatResponse)
    reply = _reply_text(result)
    await service.record(prepared, reply, ctx.request_id)
    return json_response(
        {"message": reply, "interaction_id": ctx.request_id, "agent_id": prepared.agent_id},
        headers=ctx.response_headers,
    )


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def _error_event(error: BastionError) -> bytes:
    return _event("error", openai_error(error))


async def _events(
    service: SessionService, prepared: PreparedChat, ctx: RequestContext, result: ChatResponse | ChunkStream
) -> AsyncGenerator[bytes, None]:
    """Text deltas as they arrive, then ``done`` with the interaction id once the reply is stored.
    A client that goes away cancels this (and the upstream call); nothing is stored then."""
    parts: list[str] = []
    if isinstance(result, ChatResponse):  # answered without a stream (a stage's cached answer)
        parts.append(_reply_text(result))
        yield _event("delta", {"text": parts[0]})
    else:
        try:
            async for chunk in result:
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield _event("delta", {"text": text})
        except BastionError as exc:
            yield _error_event(exc)
            return
        finally:
            await result.aclose()
    reply = "".join(parts)
    try:
        await service.record(prepared, reply, ctx.request_id)
    except SQLAlchemyError as exc:
        log.error("sessions_store_failed", error=type(exc).__name__, request_id=ctx.request_id)
        yield _error_event(SessionsUnavailable("The reply could not be stored in the session's history."))
        return
    yield _event("done", {"agent_id": prepared.agent_id, "interaction_id": ctx.request_id, "message": reply})


@route
async def chat_stream(request: Request) -> Answer:
    try:
        prepared, ctx, result, service = await _run(request, stream=True)
    except ClientDisconnected:
        return Response(status_code=499)
    return SSEResponse(_events(service, prepared, ctx, result), headers=ctx.response_headers)


routes = [
    Route(f"{PREFIX}/sessions/start", start, methods=["POST"]),
    Route(f"{PREFIX}/sessions/end", end, methods=["POST"]),
    Route(f"{PREFIX}/sessions/active", active, methods=["GET"]),
    Route(f"{PREFIX}/sessions/{{agent_id}}/history", history, methods=["GET"]),
    Route(f"{PREFIX}/chat", chat, methods=["POST"]),
    Route(f"{PREFIX}/chat/stream", chat_stream, methods=["POST", "GET"]),
]
