"""A real request through the whole application lands in the ledger with its principal, usage
and content, and is visible through the admin API of its own tenant only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.config.settings import Settings
from bastion.gateway.service import Gateway
from bastion.ledger.writer import LedgerWriter
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.harness import running_gateway

MODEL = "fake-ok"


async def _tenant_with_keys(db: Database, name: str, mode: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with db.transaction() as session:
        tenant = Tenant(name=name, settings={"ledger_mode": mode} if mode else {})
        session.add(tenant)
        await session.flush()
        out["tenant_id"] = tenant.id
        for role in ("service", "viewer"):
            secret = generate_key()
            key = ApiKey(
                tenant_id=tenant.id, name=role, prefix=listed_prefix(secret), key_hash=hash_key(secret), role=role
            )
            session.add(key)
            await session.flush()
            out[role] = secret
            out[f"{role}_id"] = key.id
    return out


def writer(gateway: Gateway) -> LedgerWriter:
    ledger = gateway.services.ledger
    assert ledger is not None
    return ledger


@pytest.fixture
async def app_client(
    database: Database, database_url: str, tmp_path: Path, fake: FakeUpstream
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        auto_migrate=False,
        local={"enabled": False},
        models=[{"name": MODEL, "deployments": [{"provider": "openai", "model": MODEL, "api_base": fake.openai_base}]}],
        budgets={"enabled": False},
        limits={"enabled": False},
        ledger={"flush_interval_s": 0.01},
    )
    async with running_gateway(settings) as running:
        yield running.client, running.gateway


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_is_recorded_and_listed_for_its_tenant_only(
    app_client: tuple[httpx.AsyncClient, Gateway], database: Database, stream: bool
) -> None:
    client, gateway = app_client
    acme = await _tenant_with_keys(database, "acme", None)
    other = await _tenant_with_keys(database, "globex", "metadata")
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hello ledger"}], "stream": stream}
    caller = {"authorization": f"Bearer {acme['service']}"}
    response = await client.post("/v1/chat/completions", json=body, headers=caller)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    await writer(gateway).flush()

    viewer = {"authorization": f"Bearer {acme['viewer']}"}
    listing = (await client.get("/api/v1/admin/interactions", headers=viewer)).json()["data"]
    assert [item["id"] for item in listing] == [request_id]
    item = listing[0]
    assert (item["tenant_id"], item["key_id"], item["model"]) == (acme["tenant_id"], acme["service_id"], MODEL)
    assert item["status"] == 200 and item["stream"] is stream and item["prompt_tokens"] > 0
    assert item["user_agent"] and item["latency_ms"] > 0 and (item["ttft_ms"] is not None) is stream
    one = (await client.get(f"/api/v1/admin/interactions/{request_id}", headers=viewer)).json()
    assert one["request_messages"] == [{"role": "user", "content": "hello ledger"}]
    assert one["response_text"] == answer_text(MODEL)

    other_viewer = {"authorization": f"Bearer {other['viewer']}"}
    assert (await client.get("/api/v1/admin/interactions", headers=other_viewer)).json()["data"] == []
    assert (await client.get(f"/api/v1/admin/interactions/{request_id}", headers=other_viewer)).status_code == 404


async def test_the_tenants_metadata_mode_keeps_no_content(
    app_client: tuple[httpx.AsyncClient, Gateway], database: Database
) -> None:
    client, gateway = app_client
    tenant = await _tenant_with_keys(database, "private", "metadata")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "my secret plan"}]}
    caller = {"authorization": f"Bearer {tenant['service']}"}
    response = await client.post("/v1/chat/completions", json=body, headers=caller)
    assert response.status_code == 200
    await writer(gateway).flush()
    viewer = {"authorization": f"Bearer {tenant['viewer']}"}
    one = (await client.get(f"/api/v1/admin/interactions/{response.headers['x-request-id']}", headers=viewer)).json()
    assert one["content_mode"] == "metadata" and one["request_messages"] is None and one["response_text"] is None
    assert one["completion_tokens"] > 0
