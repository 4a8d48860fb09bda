"""What every API endpoint shares: the gateway handle, the request context, error rendering."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response

from bastion.errors import BastionError
from bastion.gateway.context import Dialect, Endpoint, RequestContext, Timing, new_request_id
from bastion.gateway.errors import error_body, error_headers
from bastion.gateway.service import Gateway

log = structlog.get_logger("bastion.api")

Handler = Callable[[Request], Awaitable[Response]]


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def request_id(request: Request) -> str:
    state = request.scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = new_request_id()
    return state["request_id"]  # type: ignore[no-any-return]


def timing(request: Request) -> Timing:
    state = request.scope.setdefault("state", {})
    if "timing" not in state:
        state["timing"] = Timing()
    return state["timing"]  # type: ignore[no-any-return]


def new_context(request: Request, dialect: Dialect, endpoint: Endpoint, body: dict, model: str) -> RequestContext:
    return RequestContext(
        request_id=request_id(request),
        dialect=dialect,
        endpoint=endpoint,
        body=body,
        model=model,
        timing=timing(request),
        headers=request.headers,
        user_agent=request.headers.get("user-agent"),
    )


def error_response(error: BastionError, dialect: Dialect, rid: str | None = None) -> Response:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in error_headers(error, rid)[1:]}
    return Response(
        error_body(error, dialect), status_code=error.status, headers=headers, media_type="application/json"
    )


def dialect_errors(dialect: Dialect) -> Callable[[Handler], Handler]:
    """Turn any failure of the endpoint into the dialect's error JSON (never a traceback)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except BastionError as exc:
                return error_response(exc, dialect, request_id(request))
            except Exception:
                log.exception("endpoint_failed", path=request.url.path, request_id=request_id(request))
                return error_response(BastionError("Internal error."), dialect, request_id(request))

        return wrapped

    return decorate
