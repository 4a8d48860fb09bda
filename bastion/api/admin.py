"""Admin API for tenants, users and API keys: ``/api/v1/admin/...``, JSON, Bastion's error shape.

Endpoints are thin: authenticate and check the role (every route), validate the body, call
``bastion.auth.manage`` inside one transaction, invalidate the auth caches of every process when
access may have changed. Everything is scoped to the caller's tenant; ids of another tenant answer
404, exactly like ids that do not exist. Who may do what is in docs/AUTH.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response, read_json
from bastion.auth import manage
from bastion.auth.principal import Permission, Principal
from bastion.auth.schemas import KeyCreate, KeyUpdate, TenantCreate, TenantUpdate, UserCreate, UserUpdate, parse
from bastion.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bastion.store.models import AuditEvent

PREFIX = "/api/v1/admin"
T = TypeVar("T")

ONCE_WARNING = "Store this key now: it is shown only once and cannot be recovered."


# -- plumbing --------------------------------------------------------------------------------------


async def _body(request: Request) -> Any:
    return await read_json(request, gateway(request).settings.server.max_body_bytes)


def _page(request: Request) -> manage.PageRequest:
    return manage.PageRequest.from_query(request.query_params.get("limit"), request.query_params.get("cursor"))


def _listing(page: manage.Page, view: Callable[[Any], dict[str, Any]]) -> Response:
    return json_response(
        {
            "object": "list",
            "data": [view(item) for item in page.items],
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor is not None,
        }
    )


async def _read(request: Request, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with gateway(request).db.session() as session:
        return await work(session)


async def _write(request: Request, work: Callable[[AsyncSession], Awaitable[T]], *, invalidate: bool = True) -> T:
    """Run ``work`` in one transaction; then make every process drop cached credentials."""
    gw = gateway(request)
    try:
        async with gw.db.transaction() as session:
            result = await work(session)
    except IntegrityError:
        raise Conflict("The change conflicts with existing data (a duplicate name or email?).") from None
    if invalidate:
        await gw.services.authenticator.invalidate()
    return result


async def _platform_admin(request: Request) -> Principal:
    principal = await authenticate_request(request, Permission.MANAGE_TENANT)
    if not principal.platform_admin:
        raise PermissionDenied("Only a platform admin key may manage other tenants.")
    return principal


def _bool_query(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise InvalidRequest(f"Invalid request: {name} must be true or false.", param=name)


# -- who am I --------------------------------------------------------------------------------------


async def me(request: Request) -> Response:
    principal = await authenticate_request(request)
    return json_response(
        {
            "object": "principal",
            "tenant_id": principal.tenant_id,
            "tenant_name": principal.tenant_name,
            "role": principal.role.value,
            "key_id": principal.key_id,
            "key_prefix": principal.key_prefix,
            "user_id": principal.user_id,
            "user_email": principal.user_email,
            "platform_admin": principal.platform_admin,
            "method": principal.method,
            "permissions": sorted(p.value for p in Permission if principal.can(p)),
        }
    )


# -- tenants ---------------------------------------------------------------------------------------


async def get_own_tenant(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    tenant = await _read(request, lambda s: manage.tenant_by_id(s, principal.tenant_id))
    return json_response(manage.tenant_view(tenant))


async def patch_own_tenant(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_TENANT)
    data = parse(TenantUpdate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        tenant = await manage.tenant_by_id(session, principal.tenant_id)
        tenant = await manage.update_tenant(session, tenant, data, principal.actor, may_disable=False)
        return manage.tenant_view(tenant)

    return json_response(await _write(request, work))


async def list_tenants(request: Request) -> Response:
    await _platform_admin(request)
    page = _page(request)
    return _listing(await _read(request, lambda s: manage.list_tenants(s, page)), manage.tenant_view)


async def create_tenant(request: Request) -> Response:
    principal = await _platform_admin(request)
    data = parse(TenantCreate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        return manage.tenant_view(await manage.create_tenant(session, data, principal.actor))

    return json_response(await _write(request, work), status=201)


def _tenant_visible(principal: Principal, tenant_id: str) -> None:
    if not principal.platform_admin and tenant_id != principal.tenant_id:
        raise NotFound(f"No tenant {tenant_id!r}.")


async def get_tenant(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    tenant_id = request.path_params["tenant_id"]
    _tenant_visible(principal, tenant_id)
    return json_response(manage.tenant_view(await _read(request, lambda s: manage.tenant_by_id(s, tenant_id))))


async def patch_tenant(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_TENANT)
    tenant_id = request.path_params["tenant_id"]
    _tenant_visible(principal, tenant_id)
    data = parse(TenantUpdate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        tenant = await manage.tenant_by_id(session, tenant_id)
        may_disable = principal.platform_admin and tenant_id != principal.tenant_id
        tenant = await manage.update_tenant(session, tenant, data, principal.actor, may_disable=may_disable)
        return manage.tenant_view(tenant)

    return json_response(await _write(request, work))


async def create_tenant_key(request: Request) -> Response:
    """A platform admin creates a key in any tenant (typically the first admin key of a new one)."""
    principal = await _platform_admin(request)
    tenant_id = request.path_params["tenant_id"]
    data = parse(KeyCreate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        await manage.tenant_by_id(session, tenant_id)
        key, secret = await manage.create_key(session, tenant_id, data, principal.actor)
        return {**manage.key_view(key), "key": secret, "warning": ONCE_WARNING}

    return json_response(await _write(request, work, invalidate=False), status=201)


# -- users -----------------------------------------------------------------------------------------


async def list_users(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    page = _page(request)
    return _listing(await _read(request, lambda s: manage.list_users(s, principal.tenant_id, page)), manage.user_view)


async def create_user(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_USERS)
    data = parse(UserCreate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        return manage.user_view(await manage.create_user(session, principal.tenant_id, data, principal.actor))

    return json_response(await _write(request, work), status=201)


async def get_user(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    user_id = request.path_params["user_id"]
    user = await _read(request, lambda s: manage.user_in_tenant(s, principal.tenant_id, user_id))
    return json_response(manage.user_view(user))


async def patch_user(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_USERS)
    user_id = request.path_params["user_id"]
    data = parse(UserUpdate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        user = await manage.user_in_tenant(session, principal.tenant_id, user_id)
        return manage.user_view(await manage.update_user(session, user, data, principal.actor))

    return json_response(await _write(request, work))


async def delete_user(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_USERS)
    user_id = request.path_params["user_id"]

    async def work(session: AsyncSession) -> None:
        user = await manage.user_in_tenant(session, principal.tenant_id, user_id)
        await manage.delete_user(session, user, principal.actor)

    await _write(request, work)
    return json_response({"object": "user", "id": user_id, "deleted": True})


# -- keys ------------------------------------------------------------------------------------------


async def list_keys(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    page = _page(request)
    query = request.query_params
    include_revoked = _bool_query(request, "include_revoked", True)

    async def work(session: AsyncSession) -> manage.Page:
        return await manage.list_keys(
            session,
            principal.tenant_id,
            page,
            prefix=query.get("prefix") or None,
            user_id=query.get("user_id") or None,
            include_revoked=include_revoked,
        )

    return _listing(await _read(request, work), manage.key_view)


async def create_key(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_KEYS)
    data = parse(KeyCreate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        key, secret = await manage.create_key(session, principal.tenant_id, data, principal.actor)
        return {**manage.key_view(key), "key": secret, "warning": ONCE_WARNING}

    # A new key needs no invalidation: no process can have cached anything about it.
    return json_response(await _write(request, work, invalidate=False), status=201)


async def get_key(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_ACCESS)
    key_id = request.path_params["key_id"]
    key = await _read(request, lambda s: manage.key_in_tenant(s, principal.tenant_id, key_id))
    return json_response(manage.key_view(key))


async def patch_key(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_KEYS)
    key_id = request.path_params["key_id"]
    data = parse(KeyUpdate, await _body(request))

    async def work(session: AsyncSession) -> dict[str, Any]:
        key = await manage.key_in_tenant(session, principal.tenant_id, key_id)
        return manage.key_view(await manage.update_key(session, key, data, principal.actor))

    return json_response(await _write(request, work))


async def revoke_key(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_KEYS)
    key_id = request.path_params["key_id"]

    async def work(session: AsyncSession) -> dict[str, Any]:
        key = await manage.key_in_tenant(session, principal.tenant_id, key_id)
        return manage.key_view(await manage.revoke_key(session, key, principal.actor))

    return json_response(await _write(request, work))


# -- audit -----------------------------------------------------------------------------------------


def _audit_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "object": "audit_event",
        "id": event.id,
        "tenant_id": event.tenant_id,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "created_at": manage.iso(event.created_at),
        "details": event.details,
    }


async def list_audit(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.MANAGE_TENANT)
    page = _page(request)

    async def work(session: AsyncSession) -> manage.Page:
        statement = select(AuditEvent).where(AuditEvent.tenant_id == principal.tenant_id)
        return await manage.paginate(session, statement, AuditEvent, page)

    return _listing(await _read(request, work), _audit_view)


routes = [
    Route(f"{PREFIX}/me", me, methods=["GET"]),
    Route(f"{PREFIX}/tenant", get_own_tenant, methods=["GET"]),
    Route(f"{PREFIX}/tenant", patch_own_tenant, methods=["PATCH"]),
    Route(f"{PREFIX}/tenants", list_tenants, methods=["GET"]),
    Route(f"{PREFIX}/tenants", create_tenant, methods=["POST"]),
    Route(f"{PREFIX}/tenants/{{tenant_id}}", get_tenant, methods=["GET"]),
    Route(f"{PREFIX}/tenants/{{tenant_id}}", patch_tenant, methods=["PATCH"]),
    Route(f"{PREFIX}/tenants/{{tenant_id}}/keys", create_tenant_key, methods=["POST"]),
    Route(f"{PREFIX}/users", list_users, methods=["GET"]),
    Route(f"{PREFIX}/users", create_user, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}", get_user, methods=["GET"]),
    Route(f"{PREFIX}/users/{{user_id}}", patch_user, methods=["PATCH"]),
    Route(f"{PREFIX}/users/{{user_id}}", delete_user, methods=["DELETE"]),
    Route(f"{PREFIX}/keys", list_keys, methods=["GET"]),
    Route(f"{PREFIX}/keys", create_key, methods=["POST"]),
    Route(f"{PREFIX}/keys/{{key_id}}", get_key, methods=["GET"]),
    Route(f"{PREFIX}/keys/{{key_id}}", patch_key, methods=["PATCH"]),
    Route(f"{PREFIX}/keys/{{key_id}}/revoke", revoke_key, methods=["POST"]),
    Route(f"{PREFIX}/audit", list_audit, methods=["GET"]),
]
