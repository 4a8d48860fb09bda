"""``/api/v1/admin/interactions`` over HTTP with real keys, on SQLite and PostgreSQL.

Every test runs the real application (routes, auth, error rendering) in-process through httpx's
ASGI transport; the gateway's own start/stop run around it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.config.settings import Settings
from bastion.ledger.store import RowInserter
from bastion.store.db import Database
from bastion.store.models import ApiKey, Tenant
from tests.ledger.support import make_record
from tests.support.harness import running_gateway

URL = "/api/v1/admin/interactions"


@dataclass
class World:
    client: httpx.AsyncClient
    keys: dict[str, str]  # name -> plaintext key
    tenants: dict[str, str]  # name -> id
    records: list[dict[str, Any]]

    def auth(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[name]}"}


async def _seed(db: Database) -> tuple[dict[str, str], dict[str, str], list[dict[str, Any]]]:
    keys: dict[str, str] = {}
    tenants: dict[str, str] = {}
    async with db.transaction() as session:
        for tenant_name in ("acme", "globex"):
            tenant = Tenant(name=tenant_name, settings={})
            session.add(tenant)
            await session.flush()
            tenants[tenant_name] = tenant.id
            for role in ("admin", "viewer", "developer", "service"):
                secret = generate_key()
                session.add(
                    ApiKey(
                        tenant_id=tenant.id,
                        name=f"{tenant_name}-{role}",
                        prefix=listed_prefix(secret),
                        key_hash=hash_key(secret),
                        role=role,
                    )
                )
                keys[f"{tenant_name}-{role}"] = secret
    base = time.time() - 600
    records = [
        make_record(
            i,
            tenant_id=tenants["acme"] if i % 2 else tenants["globex"],
            model="big" if i % 3 == 0 else "small",
            status=500 if i % 5 == 0 else 200,
            flagged=i % 4 == 1,
            key_id="k" * 32 if i < 10 else "j" * 32,
            ts=base + i,
        )
        for i in range(24)
    ]
    await RowInserter(db).insert(records)
    return keys, tenants, records


@pytest.fixture
async def world(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    keys, tenants, records = await _seed(database)
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        auto_migrate=False,
        local={"enabled": False},
        ledger={"flush_interval_s": 0.01},
    )
    async with running_gateway(settings) as running:
        yield World(running.client, keys, tenants, records)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def expected(world: World, tenant: str, **conditions: Any) -> list[str]:
    chosen = [
        r
        for r in world.records
        if r["tenant_id"] == world.tenants[tenant] and all(r[k] == v for k, v in conditions.items())
    ]
    return [r["id"] for r in sorted(chosen, key=lambda r: r["ts"], reverse=True)]


async def test_each_role_with_the_ledger_permission_lists_only_its_tenant(world: World) -> None:
    for role in ("admin", "viewer", "developer"):
        response = await world.client.get(URL, headers=world.auth(f"acme-{role}"))
        assert ids(response) == expected(world, "acme")
        body = response.json()
        assert body["object"] == "list" and body["has_more"] is False and body["next_cursor"] is None
        assert all(item["tenant_id"] == world.tenants["acme"] for item in body["data"])
        assert "request_messages" not in body["data"][0]
    assert ids(await world.client.get(URL, headers=world.auth("globex-viewer"))) == expected(world, "globex")


@pytest.mark.parametrize(
    ("query", "conditions"),
    [
        ({"model": "big"}, {"model": "big"}),
        ({"status": "500"}, {"status": 500}),
        ({"flagged": "true"}, {"flagged": True}),
        ({"flagged": "false"}, {"flagged": False}),
        ({"key_id": "j" * 32}, {"key_id": "j" * 32}),
        ({"user_id": "nobody"}, {"user_id": "nobody"}),
        ({"model": "small", "status": "200"}, {"model": "small", "status": 200}),
    ],
)
async def test_filters(world: World, query: dict[str, str], conditions: dict[str, Any]) -> None:
    response = await world.client.get(URL, params=query, headers=world.auth("acme-viewer"))
    assert ids(response) == expected(world, "acme", **conditions)


async def test_time_range(world: World) -> None:
    from datetime import UTC, datetime

    acme = [r for r in world.records if r["tenant_id"] == world.tenants["acme"]]
    since = datetime.fromtimestamp(acme[2]["ts"], UTC).isoformat()
    until = datetime.fromtimestamp(acme[6]["ts"], UTC).isoformat()
    response = await world.client.get(URL, params={"from": since, "to": until}, headers=world.auth("acme-admin"))
    assert ids(response) == [r["id"] for r in reversed(acme[2:6])]


async def test_cursor_pagination(world: World) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "5"}
    for _ in range(10):
        response = await world.client.get(URL, params=params, headers=world.auth("acme-admin"))
        page = ids(response)
        assert len(page) <= 5
        seen += page
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert seen == expected(world, "acme")


async def test_get_one_with_content_and_never_another_tenants(world: World) -> None:
    mine = next(r for r in world.records if r["tenant_id"] == world.tenants["acme"])
    theirs = next(r for r in world.records if r["tenant_id"] == world.tenants["globex"])
    response = await world.client.get(f"{URL}/{mine['id']}", headers=world.auth("acme-viewer"))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "interaction" and body["request_messages"] == mine["request_messages"]
    assert body["response_text"] == mine["response_text"] and body["created_at"].endswith("+00:00")
    for target in (theirs["id"], "req_does_not_exist", "x" * 300):
        response = await world.client.get(f"{URL}/{target}", headers=world.auth("acme-admin"))
        assert response.status_code == 404, response.text
        assert theirs["response_text"] not in response.text


async def test_callers_without_the_permission_or_credentials_are_refused(world: World) -> None:
    cases = [
        ({}, 401),
        ({"authorization": "Bearer bst_malformed"}, 401),
        ({"authorization": "Bearer " + generate_key()}, 401),  # well formed, unknown
        ({"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.broken"}, 401),
        ({"x-api-key": "garbage"}, 401),
        (world.auth("acme-service"), 403),
    ]
    for headers, status in cases:
        for path in (URL, f"{URL}/{world.records[1]['id']}"):
            response = await world.client.get(path, headers=headers)
            assert response.status_code == status, (headers, path, response.text)
            assert "error" in response.json()


@pytest.mark.parametrize(
    "query",
    [
        {"from": "yesterday"},
        {"to": "2026-13-45"},
        {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"status": "abc"},
        {"status": "42"},
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "-1"},
        {"flagged": "maybe"},
        {"cursor": "not-a-cursor"},
        {"cursor": "x" * 2000},
        {"model": "m" * 1000},
    ],
)
async def test_malformed_queries_are_400_not_500(world: World, query: dict[str, str]) -> None:
    response = await world.client.get(URL, params=query, headers=world.auth("acme-admin"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
