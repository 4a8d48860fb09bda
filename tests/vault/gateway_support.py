"""An in-process gateway for the vault's end-to-end tests: the real default pipeline (auth, ledger,
prompt stage, ...) over the per-test database, its upstream the session's fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.auth.principal import Role
from bastion.gateway.service import Gateway
from bastion.gateway.stages.prompt import PromptStage
from bastion.guard.leak import make_canary
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway
from tests.vault.support import vault_settings

__all__ = ["PROMPTS_URL", "UPSTREAM_MODEL", "VaultGateway", "vault_gateway"]

PROMPTS_URL = "/api/v1/admin/ai/prompts"
#: The alias the prompts prefer, and what the fake upstream sees as the model name.
MODEL = "vault-model"
UPSTREAM_MODEL = "vault-upstream"
OTHER_MODEL = "other-model"


async def seed_keys(db: Database, tenants: tuple[str, ...]) -> dict[str, str]:
    """An API key per tenant and role, named ``"<tenant>-<role>"``, made directly in the database."""
    keys: dict[str, str] = {}
    async with db.transaction() as session:
        for name in tenants:
            tenant = Tenant(name=name)
            session.add(tenant)
            await session.flush()
            for role in Role:
                secret = generate_key()
                keys[f"{name}-{role.value}"] = secret
                session.add(
                    ApiKey(
                        tenant_id=tenant.id,
                        name=role.value,
                        prefix=listed_prefix(secret),
                        key_hash=hash_key(secret),
                        role=role.value,
                    )
                )
    return keys


@dataclass
class VaultGateway:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    canaries: list[str] = field(default_factory=list)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def admin(self, method: str, path: str, who: str = "acme-admin", **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, PROMPTS_URL + path, headers=self.auth(who), **kwargs)

    async def chat(self, body: dict[str, Any], who: str = "acme-service") -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=body, headers=self.auth(who))

    async def messages(self, body: dict[str, Any], who: str = "acme-service") -> httpx.Response:
        return await self.client.post("/v1/messages", json=body, headers=self.auth(who))


def _models(fake: FakeUpstream) -> list[dict[str, Any]]:
    def deployment(upstream: str) -> dict[str, Any]:
        return {"provider": "openai", "model": upstream, "api_base": fake.openai_base, "api_key": "test-key"}

    return [
        {"name": MODEL, "deployments": [deployment(UPSTREAM_MODEL)]},
        {"name": OTHER_MODEL, "deployments": [deployment("other-upstream")]},
    ]


@pytest.fixture
async def vault_gateway(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[VaultGateway]:
    """The gateway with auth and the ledger on; keys for tenants ``acme`` and ``globex`` by role."""
    settings = vault_settings(
        database_url,
        tmp_path / "data",
        models=_models(fake),
        ledger={"enabled": True, "flush_interval_s": 0.05},
        router={"retries": 0},
    )
    keys = await seed_keys(database, ("acme", "globex"))
    canaries: list[str] = []

    def recording() -> str:
        canary = make_canary()
        canaries.append(canary)
        return canary

    def record_canaries(gateway: Gateway) -> None:
        # Remember every canary the prompt stage plants.
        for stage in gateway.pipeline.stages:
            if isinstance(stage, PromptStage):
                stage.new_canary = recording

    async with running_gateway(settings, before_start=record_canaries, timeout_s=30) as running:
        yield VaultGateway(running.gateway, running.client, database, tmp_path / "data", keys, canaries)
