"""``GET /api/v1/insights/stream``: the insights events of the caller's tenant as server-sent
events (``usage:read``; docs/INSIGHTS.md, "Dashboard").

Each event has its id (``id:``), name (``event:``) and JSON data; a client that reconnects with
``Last-Event-ID`` gets the buffered events after that id, each once. A comment line
(``: keep-alive``) goes out whenever nothing was sent for ``insights.stream.keepalive_s``, so
proxies and the browser see the connection alive. The response ends after
``insights.stream.max_connection_s``: the client reconnects, and its key is checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import orjson
from starlette.requests import Request

from bastion.api.common import authenticate_request, gateway
from bastion.api.http import SSEResponse
from bastion.auth.principal import Permission
from bastion.errors import InvalidRequest, NotFound
from bastion.insights.events import StreamEvent, Subscription

KEEPALIVE: bytes = b": keep-alive\n\n"


def frame(event: StreamEvent) -> bytes:
    """One server-sent event; the data is one line of JSON (JSON escapes any newline)."""
    data = orjson.dumps(event.data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.event.encode(), data)


def last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id")
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if not value.isdigit() or len(value) > 19:
        raise InvalidRequest("Invalid request: Last-Event-ID must be an event id (a non-negative integer).")
    return int(value)


async def _next(events: Subscription) -> StreamEvent:
    return await anext(events)


async def sse_frames(events: Subscription, keepalive_s: float, max_connection_s: float) -> AsyncGenerator[bytes, None]:
    """``events`` as server-sent events, with a keep-alive comment after each idle
    ``keepalive_s``, ending after ``max_connection_s``. The pending read is never cancelled by the
    keep-alive (cancelling would end the subscription); only when the response ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_connection_s
    pending: asyncio.Task[StreamEvent] | None = None
    try:
        while (left := deadline - loop.time()) > 0:
            if pending is None:
                pending = loop.create_task(_next(events))
            done, _ = await asyncio.wait({pending}, timeout=min(keepalive_s, left))
            if not done:
                if deadline - loop.time() > 0:
                    yield KEEPALIVE
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield frame(event)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await events.aclose()


async def stream_route(request: Request) -> SSEResponse:
    principal = await authenticate_request(request, Permission.READ_USAGE)
    service = gateway(request).services.insights
    if service is None:
        raise NotFound("Insights are switched off on this gateway (insights.enabled).")
    after = last_event_id(request)
    events = service.events.subscribe(principal.tenant_id, after)
    settings = service.settings.stream
    return SSEResponse(sse_frames(events, settings.keepalive_s, settings.max_connection_s))
