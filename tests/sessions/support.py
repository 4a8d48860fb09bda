"""The sessions suite's in-process gateway: the real default pipeline and the session API over the
per-test database (SQLite and PostgreSQL), the session's fake upstream behind it, a vault prompt,
and API keys made directly in the database:

==============  ===========================================================================
``ann``         tenant acme, user ann (developer)        ``ann2`` a second key of ann
``bob``         tenant acme, user bob (developer)        ``svc``  acme service key, no user
``viewer``      acme viewer key (may not call models)    ``carl`` tenant globex, user carl
==============  ===========================================================================

The session service's clock is a ``MovableClock``: tests move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.config.settings import Settings
from bastion.gateway.service import Gateway
from bastion.sessions.service import SessionService
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant, User
from bastion.vault.model import VersionSpec
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import make_settings, running_gateway, wait_until

__all__ = [
    "MODEL",
    "PROMPT",
    "SECRET",
    "TEMPLATED",
    "UPSTREAM",
    "MovableClock",
    "SessionsEnv",
    "create_prompts",
    "eventually",
    "seed_keys",
    "session_settings",
    "sessions_env",
]

MODEL = "sess-model"
UPSTREAM = "sess-upstream"
PROMPT = "support-bot"
TEMPLATED = "greeter"
#: Vault text that must never appear in a session response or in the stored history.
SECRET = "You are OKAPI-QUARTZ-5521, Acme's support agent. Keep the discount codes secret."
TEMPLATE = "Customer {{ customer }} asks for help."


#: Bounded polling for a condition (the ledger's background flush, the cleanup task).
eventually = wait_until


class MovableClock:
    """UTC now, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def session_settings(database_url: str, data_dir: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    deployment = {"provider": "openai", "model": UPSTREAM, "api_base": fake.openai_base, "api_key": "test-key"}
    base: dict[str, Any] = {"models": [{"name": MODEL, "deployments": [deployment]}], "router": {"retries": 0}}
    base.update(overrides)
    return make_settings(database_url, data_dir, **base)


async def seed_keys(db: Database) -> dict[str, str]:
    """Keys by name (see the module doc), made directly in the database."""
    keys: dict[str, str] = {}
    async with db.transaction() as session:
        tenants = {name: Tenant(name=name) for name in ("acme", "globex")}
        session.add_all(tenants.values())
        await session.flush()
        users = {
            "ann": User(tenant_id=tenants["acme"].id, email="ann@acme.test", role="developer"),
            "bob": User(tenant_id=tenants["acme"].id, email="bob@acme.test", role="developer"),
            "carl": User(tenant_id=tenants["globex"].id, email="carl@globex.test", role="developer"),
        }
        session.add_all(users.values())
        await session.flush()
        specs = {
            "ann": ("acme", "ann", "developer"),
            "ann2": ("acme", "ann", "developer"),
            "bob": ("acme", "bob", "developer"),
            "svc": ("acme", None, "service"),
            "viewer": ("acme", None, "viewer"),
            "carl": ("globex", "carl", "developer"),
        }
        for name, (tenant, user, role) in specs.items():
            secret = generate_key()
            keys[name] = secret
            session.add(
                ApiKey(
                    tenant_id=tenants[tenant].id,
                    user_id=users[user].id if user else None,
                    name=name,
                    prefix=listed_prefix(secret),
                    key_hash=hash_key(secret),
                    role=role,
                )
            )
        keys["acme_id"], keys["globex_id"] = tenants["acme"].id, tenants["globex"].id
    return keys


@dataclass
class SessionsEnv:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    clock: MovableClock
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> SessionService:
        return self.gateway.services.sessions

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def start(self, who: str = "ann", **body: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/ai/sessions/start", json={"prompt_id": PROMPT, **body}, headers=self.auth(who)
        )

    async def start_ok(self, who: str = "ann", **body: Any) -> str:
        response = await self.start(who, **body)
        assert response.status_code == 200, response.text
        return str(response.json()["agent_id"])

    async def chat(self, agent_id: Any, message: str = "hello", who: str = "ann") -> httpx.Response:
        return await self.client.post(
            "/api/v1/ai/chat", json={"agent_id": agent_id, "message": message}, headers=self.auth(who)
        )

    async def end(self, agent_id: Any, who: str = "ann") -> httpx.Response:
        return await self.client.post("/api/v1/ai/sessions/end", json={"agent_id": agent_id}, headers=self.auth(who))

    async def history(self, agent_id: str, who: str = "ann", **params: Any) -> httpx.Response:
        return await self.client.get(f"/api/v1/ai/sessions/{agent_id}/history", params=params, headers=self.auth(who))

    async def active(self, who: str = "ann") -> httpx.Response:
        return await self.client.get("/api/v1/ai/sessions/active", headers=self.auth(who))


async def create_prompts(gateway: Gateway, tenant_ids: list[str]) -> None:
    vault = gateway.services.vault
    await vault.start()
    for tenant_id in tenant_ids:
        await vault.create_prompt(tenant_id, PROMPT, VersionSpec(SECRET, model=MODEL), actor="test")
    await vault.create_prompt(tenant_ids[0], TEMPLATED, VersionSpec(SECRET, TEMPLATE, model=MODEL), actor="test")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change the gateway's settings."""
    return {}


@pytest.fixture
async def sessions_env(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream, settings_overrides: dict[str, Any]
) -> AsyncIterator[SessionsEnv]:
    settings = session_settings(database_url, tmp_path / "data", fake, **settings_overrides)
    keys = await seed_keys(database)
    clock = MovableClock()

    def use_clock(gateway: Gateway) -> None:
        gateway.services.sessions.clock = clock

    async with running_gateway(settings, before_start=use_clock, timeout_s=30) as running:
        await create_prompts(running.gateway, [keys["acme_id"], keys["globex_id"]])
        yield SessionsEnv(running.gateway, running.client, database, clock, keys)
