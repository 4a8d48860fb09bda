"""``/api/v1/admin/jobs`` over HTTP with real keys, on SQLite and PostgreSQL: a tenant's admin
sees and acts on the tenant's jobs only, a platform admin on every tenant's, other roles on none;
filters, paging, cancel and retry, and clear 4xx answers for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.config.settings import Settings
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService
from bastion.store.db import Database
from bastion.store.models import ApiKey
from tests.jobs.support import make_tenants
from tests.support.harness import running_gateway

URL = "/api/v1/admin/jobs"


@dataclass
class World:
    client: httpx.AsyncClient
    jobs: JobService
    keys: dict[str, str]
    tenants: dict[str, str]
    ids: dict[str, list[str]]  # tenant -> job ids, newest first

    def auth(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[name]}"}


async def _keys(db: Database, tenants: dict[str, str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    async with db.transaction() as session:
        for tenant, tenant_id in tenants.items():
            for role in ("admin", "developer", "viewer"):
                secret = generate_key()
                session.add(
                    ApiKey(
                        tenant_id=tenant_id,
                        name=f"{tenant}-{role}",
                        prefix=listed_prefix(secret),
                        key_hash=hash_key(secret),
                        role=role,
                    )
                )
                keys[f"{tenant}-{role}"] = secret
        secret = generate_key()
        session.add(
            ApiKey(
                tenant_id=tenants["acme"],
                name="platform",
                prefix=listed_prefix(secret),
                key_hash=hash_key(secret),
                role="admin",
                platform_admin=True,
            )
        )
        keys["platform"] = secret
    return keys


@pytest.fixture
async def world(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    tenants = await make_tenants(database, "acme", "globex")
    keys = await _keys(database, tenants)
    settings = Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=False, local={"enabled": False})
    async with running_gateway(settings) as running:
        jobs = running.gateway.services.jobs
        ids: dict[str, list[str]] = {"acme": [], "globex": []}
        # Kinds no worker of this gateway runs: they stay queued while the test looks at them.
        for i in range(5):
            tenant = "acme" if i % 2 == 0 else "globex"
            job = await jobs.submit(
                NewJob("t.export" if i < 4 else "t.report", payload={"i": i}, tenant_id=tenants[tenant])
            )
            ids[tenant].insert(0, job.id)
        yield World(running.client, jobs, keys, tenants, ids)


def listed(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["data"]]


async def test_a_tenant_admin_sees_only_the_tenant_s_jobs(world: World) -> None:
    assert listed(await world.client.get(URL, headers=world.auth("acme-admin"))) == world.ids["acme"]
    assert listed(await world.client.get(URL, headers=world.auth("globex-admin"))) == world.ids["globex"]
    other = world.ids["globex"][0]
    for route in (f"{URL}/{other}",):
        response = await world.client.get(route, headers=world.auth("acme-admin"))
        assert response.status_code == 404, response.text
    for action in ("cancel", "retry"):
        response = await world.client.post(f"{URL}/{other}/{action}", headers=world.auth("acme-admin"))
        assert response.status_code == 404, response.text
    assert (await world.jobs.get(other)).state == "queued"  # untouched
    response = await world.client.get(
        URL, params={"tenant_id": world.tenants["globex"]}, headers=world.auth("acme-admin")
    )
    assert response.status_code == 403


async def test_a_platform_admin_sees_every_tenant_s_jobs(world: World) -> None:
    everything = listed(await world.client.get(URL, headers=world.auth("platform")))
    assert sorted(everything) == sorted(world.ids["acme"] + world.ids["globex"])
    globex = listed(
        await world.client.get(URL, params={"tenant_id": world.tenants["globex"]}, headers=world.auth("platform"))
    )
    assert globex == world.ids["globex"]
    one = await world.client.get(f"{URL}/{world.ids['globex'][0]}", headers=world.auth("platform"))
    assert one.status_code == 200 and one.json()["tenant_id"] == world.tenants["globex"]


async def test_roles_without_tenant_management_are_refused(world: World) -> None:
    for role in ("developer", "viewer"):
        response = await world.client.get(URL, headers=world.auth(f"acme-{role}"))
        assert response.status_code == 403, response.text
    assert (await world.client.get(URL)).status_code == 401


async def test_filters_paging_and_one_job(world: World) -> None:
    acme = world.auth("acme-admin")
    reports = listed(await world.client.get(URL, params={"kind": "t.report"}, headers=acme))
    assert reports == [world.ids["acme"][0]]
    first = await world.client.get(URL, params={"limit": 2}, headers=acme)
    body = first.json()
    assert listed(first) == world.ids["acme"][:2] and body["has_more"] is True
    rest = await world.client.get(URL, params={"limit": 2, "cursor": body["next_cursor"]}, headers=acme)
    assert listed(rest) == world.ids["acme"][2:] and rest.json()["has_more"] is False
    assert "payload" not in body["data"][0]
    one = (await world.client.get(f"{URL}/{world.ids['acme'][0]}", headers=acme)).json()
    assert one["object"] == "job" and one["state"] == "queued" and one["payload"] == {"i": 4}
    assert one["progress"] == {"done": 0, "total": None} and one["attempts"] == 0


async def test_cancel_then_retry_through_the_api(world: World) -> None:
    acme, job_id = world.auth("acme-admin"), world.ids["acme"][1]
    cancelled = await world.client.post(f"{URL}/{job_id}/cancel", headers=acme)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    listed_cancelled = listed(await world.client.get(URL, params={"state": "cancelled"}, headers=acme))
    assert listed_cancelled == [job_id]
    retried = await world.client.post(f"{URL}/{job_id}/retry", headers=acme)
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
    again = await world.client.post(f"{URL}/{job_id}/retry", headers=acme)
    assert again.status_code == 409 and "only a failed or cancelled job" in again.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"state": "sleeping"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
    ],
)
async def test_bad_queries_are_clear_400s(world: World, query: dict[str, str], param: str) -> None:
    response = await world.client.get(URL, params=query, headers=world.auth("acme-admin"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_unknown_and_overlong_ids_are_404s(world: World) -> None:
    for job_id in ("job_missing", "x" * 300):
        response = await world.client.get(f"{URL}/{job_id}", headers=world.auth("acme-admin"))
        assert response.status_code == 404, response.text
        response = await world.client.post(f"{URL}/{job_id}/cancel", headers=world.auth("acme-admin"))
        assert response.status_code == 404, response.text
