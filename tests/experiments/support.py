"""What the experiment tests share: an in-process gateway (auth, ledger, the real pipeline) in
front of the fake upstream, keys per tenant and role, prompts, experiments and ledger rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.config.settings import Settings
from bastion.gateway.service import Gateway
from bastion.store.db import Database
from bastion.store.models import Interaction, Tenant
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import make_settings, running_gateway, wait_until
from tests.vault.gateway_support import seed_keys

URL = "/api/v1/admin/experiments"
PROMPTS_URL = "/api/v1/admin/ai/prompts"
#: alias -> the upstream model the fake sees.
MODELS = {"exp-a": "exp-upstream-a", "exp-b": "exp-upstream-b"}


def gateway_settings(
    database_url: str, data_dir: Path, fake: FakeUpstream, extra_models: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Settings:  # fmt: skip
    models = [
        {"name": alias, "deployments": [{"provider": "openai", "model": upstream, "api_base": fake.openai_base,
                                         "api_key": "test-key"}]}
        for alias, upstream in MODELS.items()
    ]  # fmt: skip
    values: dict[str, Any] = {
        "models": models + (extra_models or []),
        "ledger": {"enabled": True, "flush_interval_s": 0.05},
        # Scripted upstream errors must reach the ledger as errors: no retry, no breaker.
        "router": {"retries": 0, "breaker": {"failure_threshold": 1_000_000}},
        **overrides,
    }
    return make_settings(database_url, data_dir, **values)


@dataclass
class ExperimentGateway:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def api(self, method: str, path: str = "", who: str = "acme-admin", **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, URL + path, headers=self.auth(who), **kwargs)

    async def chat(self, body: dict[str, Any], who: str = "acme-service", **headers: str) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=body, headers={**self.auth(who), **headers})

    async def create(
        self, definition: dict[str, Any], *, start: bool = True, who: str = "acme-admin"
    ) -> dict[str, Any]:
        response = await self.api("POST", json=definition, who=who)
        assert response.status_code == 201, response.text
        experiment: dict[str, Any] = response.json()
        if start:
            started = await self.api("POST", f"/{experiment['id']}/start", who=who)
            assert started.status_code == 200, started.text
            experiment = started.json()
        return experiment

    async def prompt(self, prompt_id: str, versions: list[dict[str, Any]]) -> None:
        """A vault prompt with ``versions`` (version 1 first; it gets the production label)."""
        headers = self.auth("acme-admin")
        first = await self.client.post(PROMPTS_URL, json={"prompt_id": prompt_id, **versions[0]}, headers=headers)
        assert first.status_code == 201, first.text
        for spec in versions[1:]:
            more = await self.client.post(f"{PROMPTS_URL}/{prompt_id}/versions", json=spec, headers=headers)
            assert more.status_code == 201, more.text

    async def rows(self, count: int, experiment_id: str | None = None) -> list[Any]:
        """The ledger's rows, once ``count`` of them (of the experiment, if given) are written."""

        async def probe() -> list[Any] | None:
            query = select(Interaction)
            if experiment_id is not None:
                query = query.where(Interaction.experiment_id == experiment_id)
            async with self.db.session() as session:
                found = list((await session.execute(query)).scalars())
            return found if len(found) >= count else None

        return await wait_until(probe, timeout_s=30, what=f"{count} ledger rows")

    async def tenant_id(self, name: str) -> str:
        async with self.db.session() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
        assert tenant is not None
        return tenant.id


def chat_body(model: str = "exp-a", user: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Hello"}], **extra}
    if user is not None:
        body["user"] = user
    return body


@pytest.fixture
async def experiment_gateway(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[ExperimentGateway]:
    """The gateway with auth and the ledger on; keys for tenants ``acme`` and ``globex`` by role."""
    settings = gateway_settings(database_url, tmp_path / "data", fake)
    keys = await seed_keys(database, ("acme", "globex"))
    async with running_gateway(settings, timeout_s=30) as running:
        yield ExperimentGateway(running.gateway, running.client, database, settings, keys)
