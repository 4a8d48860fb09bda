"""Ledger admin API: ``GET /api/v1/admin/interactions`` (list and filter) and ``.../{id}`` (one).

Every query is scoped to the caller's tenant; an id from another tenant answers 404, exactly like
an id that does not exist. Listings leave out the content (messages and answer text), which only
the single-interaction route returns.

Query parameters of the listing: ``from`` / ``to`` (ISO 8601; ``from`` inclusive, ``to``
exclusive; a time without a zone is UTC), ``key_id``, ``user_id``, ``model``, ``status`` (HTTP
status), ``flagged`` (true/false), ``limit`` (1..500, default 50) and ``cursor`` (the
``next_cursor`` of the previous page). Results are newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response
from bastion.auth.principal import Permission, Principal
from bastion.errors import InvalidRequest, NotFound
from bastion.ledger.store import MAX_PAGE, InteractionFilter, get_interaction, list_interactions, to_json

PREFIX = "/api/v1/admin/interactions"
DEFAULT_PAGE = 50


async def require(request: Request, permission: Permission) -> Principal:
    """The authenticated caller (401 otherwise), holding ``permission`` (403 otherwise)."""

    return await authenticate_request(request, permission)


def _time(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+") if value.count(" ") == 1 else value)
    except ValueError:
        raise InvalidRequest(f"Invalid request: {name} must be an ISO 8601 time.", param=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int(request: Request, name: str, low: int, high: int) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidRequest(f"Invalid request: {name} must be an integer from {low} to {high}.", param=name)
    return number


def _bool(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise InvalidRequest(f"Invalid request: {name} must be true or false.", param=name)


def _text(request: Request, name: str, max_length: int = 256) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise InvalidRequest(f"Invalid request: {name} is too long.", param=name)
    return value


def parse_filter(request: Request, tenant_id: str) -> InteractionFilter:
    """The listing's filters from the query string (400 for anything malformed)."""
    since, until = _time(request, "from"), _time(request, "to")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("Invalid request: from must be earlier than to.", param="from")
    return InteractionFilter(
        tenant_id=tenant_id,
        since=since,
        until=until,
        key_id=_text(request, "key_id", 64),
        user_id=_text(request, "user_id", 64),
        model=_text(request, "model"),
        status=_int(request, "status", 100, 599),
        flagged=_bool(request, "flagged"),
        experiment_id=_text(request, "experiment_id", 32),
        experiment_variant=_text(request, "experiment_variant", 64),
    )


async def list_route(request: Request) -> Response:
    principal = await require(request, Permission.READ_LEDGER)
    filters = parse_filter(request, principal.tenant_id)
    limit = _int(request, "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    cursor = _text(request, "cursor", 512)
    rows, next_cursor = await list_interactions(gateway(request).db, filters, limit=limit, cursor=cursor)
    return json_response(
        {
            "object": "list",
            "data": [to_json(row) for row in rows],
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
        }
    )


async def get_route(request: Request) -> Response:
    principal = await require(request, Permission.READ_LEDGER)
    interaction_id = request.path_params["interaction_id"]
    row = None
    if len(interaction_id) <= 64:
        row = await get_interaction(gateway(request).db, principal.tenant_id, interaction_id)
    if row is None:
        raise NotFound(f"No interaction {interaction_id[:64]!r} in this tenant.")
    return json_response(to_json(row))


routes = [
    Route(PREFIX, list_route, methods=["GET"]),
    Route(PREFIX + "/{interaction_id}", get_route, methods=["GET"]),
]
