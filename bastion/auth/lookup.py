"""Database side of credential resolution (the cache-miss path): one query per credential.

Each function returns a ``Resolution``: either a principal (with the credential's own expiry, so
the cache can check it on every hit) or the reason for refusing it. Refusals are values, not
exceptions, because they are cached like principals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth.principal import Principal, Role
from bastion.auth.tokens import TokenClaims
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant, User

UNKNOWN_KEY = (
    "Invalid API key: no such key in this gateway's database. Keys live in the database of the data "
    "directory (or database_url) they were created with: a key made by `bastion keys create` in another "
    "directory, or with another --data-dir / BASTION_DATA_DIR, is unknown here."
)
REVOKED_KEY = "This API key has been revoked."
EXPIRED_KEY = "This API key has expired."
DISABLED_TENANT = "This tenant is disabled."
DISABLED_USER = "This user is disabled."
UNKNOWN_USER = "The bearer token names no user of this gateway."


@dataclass(frozen=True, slots=True)
class Resolution:
    principal: Principal | None = None
    refusal: str | None = None
    #: Unix time at which the credential stops being valid (None: never).
    expires_at: float | None = None


def _role(value: str) -> Role:
    return Role(value)


def principal_for_key(key: ApiKey, tenant: Tenant, user: User | None) -> Principal:
    return Principal(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        role=_role(key.role),
        key_id=key.id,
        user_id=key.user_id,
        platform_admin=bool(key.platform_admin) and key.role == Role.ADMIN,
        method="api_key",
        key_prefix=key.prefix,
        user_email=user.email if user is not None else None,
        tenant_settings=dict(tenant.settings or {}),
        user_settings=dict(user.settings or {}) if user is not None else {},
        key_settings=dict(key.settings or {}),
    )


async def resolve_key(session: AsyncSession, key_hash: str, now: datetime | None = None) -> Resolution:
    statement = (
        select(ApiKey, Tenant, User)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .outerjoin(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_hash == key_hash)
    )
    row = (await session.execute(statement)).first()
    if row is None:
        return Resolution(refusal=UNKNOWN_KEY)
    key, tenant, user = row
    now = now or datetime.now(UTC)
    if key.revoked_at is not None:
        return Resolution(refusal=REVOKED_KEY)
    if key.expires_at is not None and key.expires_at <= now:
        return Resolution(refusal=EXPIRED_KEY)
    if tenant.disabled:
        return Resolution(refusal=DISABLED_TENANT)
    if user is not None and user.disabled:
        return Resolution(refusal=DISABLED_USER)
    expires_at = key.expires_at.timestamp() if key.expires_at is not None else None
    return Resolution(principal=principal_for_key(key, tenant, user), expires_at=expires_at)


async def resolve_key_id(session: AsyncSession, tenant_id: str, key_id: str) -> Resolution:
    """A key by id (work stored on its behalf): the same checks as ``resolve_key``."""
    row = (
        await session.execute(select(ApiKey.key_hash).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    ).first()
    if row is None:
        return Resolution(refusal="The API key that owns this work no longer exists.")
    return await resolve_key(session, row[0])


async def resolve_user_id(session: AsyncSession, tenant_id: str, user_id: str) -> Resolution:
    """A user by id (work stored on behalf of a bearer token's user)."""
    row = (
        await session.execute(
            select(User, Tenant)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(User.id == user_id, Tenant.id == tenant_id)
        )
    ).first()
    if row is None:
        return Resolution(refusal=UNKNOWN_USER)
    user, tenant = row
    if tenant.disabled:
        return Resolution(refusal=DISABLED_TENANT)
    if user.disabled:
        return Resolution(refusal=DISABLED_USER)
    return Resolution(principal=_user_principal(tenant, user))


def _user_principal(tenant: Tenant, user: User) -> Principal:
    return Principal(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        role=_role(user.role),
        user_id=user.id,
        method="jwt",
        user_email=user.email,
        tenant_settings=dict(tenant.settings or {}),
        user_settings=dict(user.settings or {}),
    )


async def resolve_token_user(session: AsyncSession, claims: TokenClaims) -> Resolution:
    """The user a verified JWT names: by id or by email, within the tenant the token names."""
    tenant = (await session.execute(select(Tenant).where(Tenant.name == claims.tenant))).scalar_one_or_none()
    if tenant is None:
        return Resolution(refusal=UNKNOWN_USER)
    condition = User.email == claims.user.lower() if "@" in claims.user else User.id == claims.user
    user = (await session.execute(select(User).where(User.tenant_id == tenant.id, condition))).scalar_one_or_none()
    if user is None:
        return Resolution(refusal=UNKNOWN_USER)
    if tenant.disabled:
        return Resolution(refusal=DISABLED_TENANT)
    if user.disabled:
        return Resolution(refusal=DISABLED_USER)
    return Resolution(principal=_user_principal(tenant, user), expires_at=claims.expires_at)


async def ensure_tenant(session: AsyncSession, name: str) -> Tenant:
    """The tenant called ``name``, created if missing (caller commits)."""
    tenant = (await session.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()
    if tenant is None:
        tenant = Tenant(name=name, settings={})
        session.add(tenant)
        await session.flush()
    return tenant


async def admin_key_exists(session: AsyncSession) -> bool:
    """Whether any tenant has a usable admin key (else start-up explains how to make one)."""
    now = datetime.now(UTC)
    statement = (
        select(ApiKey.id)
        .where(
            ApiKey.role == Role.ADMIN.value,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
        .limit(1)
    )
    return (await session.execute(statement)).first() is not None


class DefaultTenantId:
    """The id of the tenant anonymous callers belong to (``auth.default_tenant``), looked up once
    it exists (auth off: the authenticator creates it at start-up)."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._id: str | None = None

    async def __call__(self) -> str | None:
        if self._id is None:
            async with self.db.session() as session:
                self._id = await session.scalar(select(Tenant.id).where(Tenant.name == self.name))
        return self._id
