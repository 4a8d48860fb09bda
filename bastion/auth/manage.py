"""Managing tenants, users and keys: the operations behind the admin API and the CLI.

Every function takes an open session (the caller owns the transaction) and, for anything inside a
tenant, the tenant's id: rows of another tenant are simply not found, so callers answer 404 and
never reveal that they exist. Every change writes an ``AuditEvent`` in the same transaction.
Changes that can withdraw access return normally; the caller must then invalidate the auth caches
(``Authenticator.invalidate``) once the transaction has committed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.auth.principal import Role
from bastion.auth.schemas import (
    KeyCreate,
    KeySettings,
    KeyUpdate,
    TenantCreate,
    TenantSettings,
    TenantUpdate,
    UserCreate,
    UserSettings,
    UserUpdate,
    merge_settings,
    settings_dict,
)
from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.store.models import ApiKey, AuditEvent, Tenant, User

MAX_PAGE = 500
DEFAULT_PAGE = 100


# -- pagination ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_PAGE
    #: Opaque: where the previous page ended.
    cursor: str | None = None

    @classmethod
    def from_query(cls, limit: str | None, cursor: str | None) -> PageRequest:
        if limit is None or limit == "":
            size = DEFAULT_PAGE
        else:
            try:
                size = int(limit)
            except ValueError:
                raise InvalidRequest("Invalid request: limit must be an integer.", param="limit") from None
            if not 1 <= size <= MAX_PAGE:
                raise InvalidRequest(f"Invalid request: limit must be between 1 and {MAX_PAGE}.", param="limit")
        return cls(limit=size, cursor=cursor or None)


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[Any]
    next_cursor: str | None


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Invalid request: malformed cursor.", param="cursor") from None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return created_at, row_id


async def paginate(session: AsyncSession, statement: Select[Any], model: Any, page: PageRequest) -> Page:
    """Keyset pagination in (created_at, id) order: stable while rows are added."""
    if page.cursor is not None:
        created_at, row_id = _decode_cursor(page.cursor)
        statement = statement.where(
            or_(model.created_at > created_at, and_(model.created_at == created_at, model.id > row_id))
        )
    statement = statement.order_by(model.created_at, model.id).limit(page.limit + 1)
    rows = list((await session.execute(statement)).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page(items=rows, next_cursor=next_cursor)


# -- audit -----------------------------------------------------------------------------------------


def audit(
    session: AsyncSession,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(tenant_id=tenant_id, actor=actor, action=action, target=target, details=details or {}))


# -- views (what the API returns; never a key or its hash) -----------------------------------------


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {
        "object": "tenant",
        "id": tenant.id,
        "name": tenant.name,
        "created_at": iso(tenant.created_at),
        "disabled": bool(tenant.disabled),
        "settings": dict(tenant.settings or {}),
    }


def user_view(user: User) -> dict[str, Any]:
    return {
        "object": "user",
        "id": user.id,
        "tenant_id": user.tenant_id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "created_at": iso(user.created_at),
        "disabled": bool(user.disabled),
        "settings": dict(user.settings or {}),
    }


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "object": "api_key",
        "id": key.id,
        "tenant_id": key.tenant_id,
        "user_id": key.user_id,
        "prefix": key.prefix,
        "name": key.name,
        "role": key.role,
        "platform_admin": bool(key.platform_admin),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "settings": dict(key.settings or {}),
    }


# -- tenants ---------------------------------------------------------------------------------------


async def tenant_by_id(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_id!r}.")
    return tenant


async def tenant_by_name(session: AsyncSession, name: str) -> Tenant | None:
    return (await session.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()


async def list_tenants(session: AsyncSession, page: PageRequest) -> Page:
    return await paginate(session, select(Tenant), Tenant, page)


async def create_tenant(session: AsyncSession, data: TenantCreate, actor: str) -> Tenant:
    if await tenant_by_name(session, data.name) is not None:
        raise Conflict(f"A tenant named {data.name!r} already exists.")
    tenant = Tenant(name=data.name, settings=settings_dict(data.settings), disabled=False)
    session.add(tenant)
    await session.flush()
    audit(session, tenant.id, actor, "tenant.create", f"tenant:{tenant.id}", {"name": tenant.name})
    return tenant


async def update_tenant(
    session: AsyncSession, tenant: Tenant, data: TenantUpdate, actor: str, *, may_disable: bool
) -> Tenant:
    changes: dict[str, Any] = {}
    if data.settings is not None:
        tenant.settings = merge_settings(TenantSettings, dict(tenant.settings or {}), data.settings)
        changes["settings"] = data.settings
    if data.disabled is not None:
        if not may_disable:
            raise InvalidRequest("Invalid request: only a platform admin may disable a tenant.", param="disabled")
        tenant.disabled = data.disabled
        changes["disabled"] = data.disabled
    audit(session, tenant.id, actor, "tenant.update", f"tenant:{tenant.id}", changes)
    return tenant


# -- users -----------------------------------------------------------------------------------------


async def user_in_tenant(session: AsyncSession, tenant_id: str, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound(f"No user {user_id!r} in this tenant.")
    return user


async def user_by_email(session: AsyncSession, tenant_id: str, email: str) -> User | None:
    statement = select(User).where(User.tenant_id == tenant_id, User.email == email.lower())
    return (await session.execute(statement)).scalar_one_or_none()


async def list_users(session: AsyncSession, tenant_id: str, page: PageRequest) -> Page:
    return await paginate(session, select(User).where(User.tenant_id == tenant_id), User, page)


async def create_user(session: AsyncSession, tenant_id: str, data: UserCreate, actor: str) -> User:
    if await user_by_email(session, tenant_id, data.email) is not None:
        raise Conflict(f"A user with email {data.email!r} already exists in this tenant.")
    user = User(
        tenant_id=tenant_id,
        email=data.email,
        name=data.name,
        role=data.role.value,
        settings=settings_dict(data.settings),
        disabled=False,
    )
    session.add(user)
    await session.flush()
    audit(session, tenant_id, actor, "user.create", f"user:{user.id}", {"email": user.email, "role": user.role})
    return user


async def update_user(session: AsyncSession, user: User, data: UserUpdate, actor: str) -> User:
    changes: dict[str, Any] = {}
    if data.name is not None:
        user.name = changes["name"] = data.name
    if data.role is not None:
        user.role = changes["role"] = data.role.value
    if data.disabled is not None:
        user.disabled = changes["disabled"] = data.disabled
    if data.settings is not None:
        user.settings = merge_settings(UserSettings, dict(user.settings or {}), data.settings)
        changes["settings"] = data.settings
    audit(session, user.tenant_id, actor, "user.update", f"user:{user.id}", changes)
    return user


async def delete_user(session: AsyncSession, user: User, actor: str) -> None:
    # The user's keys go with it. Deleted explicitly rather than left to ON DELETE CASCADE, so the
    # audit event can say which keys went.
    keys = list((await session.execute(select(ApiKey).where(ApiKey.user_id == user.id))).scalars())
    for key in keys:
        await session.delete(key)
    details = {"email": user.email, "deleted_keys": [key.prefix for key in keys]}
    audit(session, user.tenant_id, actor, "user.delete", f"user:{user.id}", details)
    await session.delete(user)


# -- keys ------------------------------------------------------------------------------------------


async def key_in_tenant(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"No API key {key_id!r} in this tenant.")
    return key


async def keys_by_prefix(session: AsyncSession, prefix: str, tenant_id: str | None = None) -> list[ApiKey]:
    statement = select(ApiKey).where(ApiKey.prefix.startswith(prefix, autoescape=True))
    if tenant_id is not None:
        statement = statement.where(ApiKey.tenant_id == tenant_id)
    return list((await session.execute(statement.order_by(ApiKey.created_at))).scalars())


async def list_keys(
    session: AsyncSession,
    tenant_id: str,
    page: PageRequest,
    *,
    prefix: str | None = None,
    user_id: str | None = None,
    include_revoked: bool = True,
) -> Page:
    statement = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if prefix:
        statement = statement.where(ApiKey.prefix.startswith(prefix, autoescape=True))
    if user_id:
        statement = statement.where(ApiKey.user_id == user_id)
    if not include_revoked:
        statement = statement.where(ApiKey.revoked_at.is_(None))
    return await paginate(session, statement, ApiKey, page)


async def create_key(
    session: AsyncSession, tenant_id: str, data: KeyCreate, actor: str, *, platform_admin: bool = False
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which the caller shows once: only its hash is stored."""
    if data.user_id is not None:
        await user_in_tenant(session, tenant_id, data.user_id)
    if platform_admin and data.role != Role.ADMIN:
        raise InvalidRequest("Invalid request: a platform admin key must have the admin role.", param="role")
    secret = generate_key()
    key = ApiKey(
        tenant_id=tenant_id,
        user_id=data.user_id,
        name=data.name,
        prefix=listed_prefix(secret),
        key_hash=hash_key(secret),
        role=data.role.value,
        platform_admin=platform_admin,
        expires_at=data.expires_at,
        settings=settings_dict(data.settings),
    )
    session.add(key)
    await session.flush()
    details = {"prefix": key.prefix, "role": key.role, "name": key.name, "platform_admin": platform_admin}
    audit(session, tenant_id, actor, "key.create", f"key:{key.id}", details)
    return key, secret


async def update_key(session: AsyncSession, key: ApiKey, data: KeyUpdate, actor: str) -> ApiKey:
    changes: dict[str, Any] = {}
    if data.name is not None:
        key.name = changes["name"] = data.name
    if data.settings is not None:
        key.settings = merge_settings(KeySettings, dict(key.settings or {}), data.settings)
        changes["settings"] = data.settings
    audit(session, key.tenant_id, actor, "key.update", f"key:{key.id}", changes)
    return key


async def revoke_key(session: AsyncSession, key: ApiKey, actor: str) -> ApiKey:
    """Revoke ``key`` (idempotent: revoking twice keeps the first time)."""
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    audit(session, key.tenant_id, actor, "key.revoke", f"key:{key.id}", {"prefix": key.prefix})
    return key
