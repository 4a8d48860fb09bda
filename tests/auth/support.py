"""Helpers and fixtures of the identity suite.

``env`` is an in-process gateway app (no pipeline stages: the admin API and the authenticator
are under test) over the per-test database of ``tests/support/db.py``, on SQLite and on
PostgreSQL. ``seed_key``/``seed_user`` make rows directly, as the CLI would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth import manage
from bastion.auth.authenticator import Authenticator
from bastion.auth.lookup import ensure_tenant
from bastion.auth.principal import Role
from bastion.auth.schemas import KeyCreate, KeySettings, UserCreate
from bastion.config.settings import Settings
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from bastion.store.models import ApiKey, User
from tests.support.harness import make_settings, running_gateway

__all__ = ["Env", "bearer", "env", "seed_key", "seed_user", "settings_for"]


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an identity test: only identity on; other subsystems have suites of their own."""
    return make_settings(database_url, data_dir, **overrides)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def seed_user(db: Database, tenant: str, email: str, role: Role = Role.DEVELOPER) -> User:
    async with db.transaction() as session:
        tenant_row = await ensure_tenant(session, tenant)
        return await manage.create_user(session, tenant_row.id, UserCreate(email=email, role=role), "test")


async def seed_key(
    db: Database,
    tenant: str,
    role: Role = Role.ADMIN,
    *,
    platform: bool = False,
    user_id: str | None = None,
    expires_at: datetime | None = None,
    name: str = "",
    settings: dict[str, Any] | None = None,
) -> tuple[str, ApiKey]:
    """A key in ``tenant`` (created if missing): its plaintext and its row."""
    async with db.transaction() as session:
        tenant_row = await ensure_tenant(session, tenant)
        data = KeyCreate.model_construct(
            name=name, role=role, expires_at=expires_at, user_id=user_id, settings=KeySettings(**(settings or {}))
        )
        key, secret = await manage.create_key(session, tenant_row.id, data, "test", platform_admin=platform)
        return secret, key


@dataclass
class Env:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database

    @property
    def authenticator(self) -> Authenticator:
        return self.gateway.services.authenticator


@pytest.fixture
async def env(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """The admin API in process (no pipeline stages, services not started), over a migrated
    per-test database (SQLite and PostgreSQL)."""
    settings = settings_for(database_url, tmp_path / "data")
    async with running_gateway(settings, stages=[], start=False) as running:
        yield Env(gateway=running.gateway, client=running.client, db=database)
