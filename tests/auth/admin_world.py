"""A populated identity world for the admin API tests, and the table of every admin route.

Tenant ``acme`` has one key per role, a user, a key and a user that writes may change or delete;
tenant ``beta`` has its own admin, user and key; tenant ``root`` holds the platform admin key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.auth.principal import Role
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant, User
from tests.auth.support import Env, bearer, seed_key, seed_user

__all__ = ["ROUTES", "AdminRoute", "World", "snapshot", "world"]


@dataclass
class World:
    env: Env
    keys: dict[str, str] = field(default_factory=dict)  # label -> plaintext key
    ids: dict[str, str] = field(default_factory=dict)  # label -> row id

    async def call(self, who: str | None, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = bearer(self.keys[who]) if who else {}
        headers.update(kwargs.pop("headers", {}))
        if body is not None:
            kwargs["json"] = body
        return await self.env.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture
async def world(env: Env) -> AsyncIterator[World]:
    db = env.db
    w = World(env=env)
    for role in Role:
        w.keys[role.value], key = await seed_key(db, "acme", role, name=f"acme-{role.value}")
        w.ids[f"key_{role.value}"] = key.id
    w.ids["acme"] = key.tenant_id
    w.ids["user"] = (await seed_user(db, "acme", "dev@acme.io", Role.DEVELOPER)).id
    w.ids["victim_user"] = (await seed_user(db, "acme", "gone@acme.io", Role.VIEWER)).id
    w.ids["victim_key"] = (await seed_key(db, "acme", Role.SERVICE, name="victim"))[1].id
    w.keys["beta_admin"], beta_key = await seed_key(db, "beta", Role.ADMIN, name="beta-admin")
    w.ids["beta"] = beta_key.tenant_id
    w.ids["beta_key"] = beta_key.id
    w.ids["beta_user"] = (await seed_user(db, "beta", "dev@beta.io")).id
    w.keys["platform"], root_key = await seed_key(db, "root", Role.ADMIN, platform=True, name="platform")
    w.ids["root"] = root_key.tenant_id
    yield w


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class AdminRoute:
    method: str
    #: Path with ``{label}`` placeholders filled from ``World.ids``.
    template: str
    #: any: every authenticated caller; read: admin and viewer; admin; platform: platform admins.
    rule: str
    body: Callable[[], Any] | None = None

    def path(self, ids: dict[str, str]) -> str:
        return "/api/v1/admin" + self.template.format(**ids)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


ROUTES: list[AdminRoute] = [
    AdminRoute("GET", "/me", "any"),
    AdminRoute("GET", "/tenant", "read"),
    AdminRoute("PATCH", "/tenant", "admin", lambda: {"settings": {"rpm": 50, "ledger_mode": "metadata"}}),
    AdminRoute("GET", "/tenants", "platform"),
    AdminRoute("POST", "/tenants", "platform", lambda: {"name": _unique("t")}),
    AdminRoute("GET", "/tenants/{acme}", "read"),
    AdminRoute("PATCH", "/tenants/{acme}", "admin", lambda: {"settings": {"tpm": 1000}}),
    AdminRoute("POST", "/tenants/{beta}/keys", "platform", lambda: {"role": "admin", "name": "first"}),
    AdminRoute("GET", "/users", "read"),
    AdminRoute("POST", "/users", "admin", lambda: {"email": _unique("u") + "@acme.io", "role": "developer"}),
    AdminRoute("GET", "/users/{user}", "read"),
    AdminRoute("PATCH", "/users/{user}", "admin", lambda: {"name": "Dev", "settings": {"daily_usd": 5}}),
    AdminRoute("DELETE", "/users/{victim_user}", "admin"),
    AdminRoute("GET", "/keys", "read"),
    AdminRoute("POST", "/keys", "admin", lambda: {"role": "service", "name": "new", "settings": {"rpm": 10}}),
    AdminRoute("GET", "/keys/{victim_key}", "read"),
    AdminRoute("PATCH", "/keys/{victim_key}", "admin", lambda: {"name": "renamed", "settings": {"rpm": 5}}),
    AdminRoute("POST", "/keys/{victim_key}/revoke", "admin"),
    AdminRoute("GET", "/audit", "admin"),
]


async def snapshot(db: Database, tenant_id: str) -> dict[str, Any]:
    """Everything about one tenant that an admin route could change."""
    async with db.session() as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        users = (await session.execute(select(User).where(User.tenant_id == tenant_id).order_by(User.id))).scalars()
        key_query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)
        keys = (await session.execute(key_query)).scalars()
        return {
            "tenant": (tenant.name, tenant.disabled, dict(tenant.settings or {})),
            "users": [(u.id, u.email, u.name, u.role, u.disabled, dict(u.settings or {})) for u in users],
            "keys": [(k.id, k.name, k.role, k.revoked_at, k.expires_at, dict(k.settings or {})) for k in keys],
        }
