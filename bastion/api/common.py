"""What every endpoint shares: the gateway handle, the request context, authentication."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from bastion.auth.principal import Permission, Principal, require
from bastion.dialects.errors import Dialect
from bastion.errors import InvalidRequest
from bastion.gateway.context import Endpoint, RequestContext, Timing, new_request_id
from bastion.gateway.service import Gateway


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _state(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def request_id(request: Request) -> str:
    state = _state(request)
    if "request_id" not in state:
        state["request_id"] = new_request_id()
    rid: str = state["request_id"]
    return rid


def timing(request: Request) -> Timing:
    state = _state(request)
    if "timing" not in state:
        state["timing"] = Timing()
    value: Timing = state["timing"]
    return value


def new_context(
    request: Request, dialect: Dialect, endpoint: Endpoint, body: dict[str, Any], model: str
) -> RequestContext:
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


async def authenticate_request(request: Request, permission: Permission | None = None) -> Principal:
    """The caller's principal (401 without valid credentials), checked for ``permission`` (403).

    Endpoints outside the pipeline (admin, ledger, sessions, models) use the same credentials,
    cache and revocation epoch as the model endpoints."""
    principal = await gateway(request).services.authenticator.authenticate(request.headers)
    _state(request)["principal"] = principal
    return require(principal, permission)


#: The deployment's own model name, for clients that want it: answers are named by the alias.
UPSTREAM_MODEL_HEADER = "x-bastion-upstream-model"


def upstream_model_header(ctx: RequestContext) -> dict[str, str] | None:
    """The stages' response headers (x-ratelimit-*) plus the upstream's model name, when a
    deployment answered (error responses carry their headers on the exception)."""
    model = ctx.trace.upstream_model
    if model is None:
        return ctx.response_headers
    return {**(ctx.response_headers or {}), UPSTREAM_MODEL_HEADER: model}


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter from ``low`` to ``high`` (400 otherwise); ``default`` if absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid request: {name} must be an integer from {low} to {high}.", param=name)
    return value
