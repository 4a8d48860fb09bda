"""``/api/v1/insights/...`` and ``POST /api/metrics/ingest`` over HTTP with real keys, on SQLite
and PostgreSQL: roles, tenant isolation, bad input, ingestion into the ledger and the roll-ups,
and the roll-up job run by the gateway's own workers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.gateway.service import Gateway
from bastion.insights.job import JOB_KIND
from bastion.jobs.model import SUCCEEDED, JobFilter
from bastion.store.db import Database
from bastion.store.models import ApiKey, Interaction
from tests.insights.synthetic import insert, records
from tests.jobs.support import make_tenants
from tests.support.harness import make_settings, running_gateway, wait_until

P = "/api/v1/insights"


@dataclass
class World:
    client: httpx.AsyncClient
    gateway: Gateway
    keys: dict[str, str]
    tenants: dict[str, str]
    rows: list[dict[str, Any]]

    def auth(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[name]}"}


async def _seed(db: Database) -> tuple[dict[str, str], dict[str, str]]:
    """Two tenants, and a key of every role in each (named ``<tenant>-<role>``)."""
    tenants = await make_tenants(db, "acme", "globex")
    keys = {
        f"{name}-{role}": generate_key() for name in tenants for role in ("admin", "viewer", "developer", "service")
    }
    async with db.transaction() as session:
        session.add_all(
            ApiKey(tenant_id=tenants[name.split("-")[0]], name=name, prefix=listed_prefix(secret),
                   key_hash=hash_key(secret), role=name.split("-")[1])
            for name, secret in keys.items()
        )  # fmt: skip
    return keys, tenants


@pytest.fixture
async def world(database: Database, database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    keys, tenants = await _seed(database)
    base = datetime.now(UTC) - timedelta(hours=3)
    rows = records(400, seed=9, base=base, span_s=7200)
    for r in rows:  # acme gets the first tenant's rows, globex the second's, the third is nobody's
        r["tenant_id"] = {"tenant_a": tenants["acme"], "tenant_b": tenants["globex"]}.get(r["tenant_id"], "other")
    await insert(database, rows)
    settings = make_settings(
        database_url,
        tmp_path,
        ledger={"flush_interval_s": 0.01},
        # Alerts judge the whole synthetic span (3 to 1 hours ago): with the default 60-minute window
        # they would see only the rows of the 5-minute bucket that straddles its start, a share
        # that depends on the wall clock.
        insights={"ingest": {"per_minute": 4}, "alerts": {"window_minutes": 240}},
    )
    async with running_gateway(settings) as running:
        insights = running.gateway.services.insights
        assert insights is not None
        await insights.rollup.run()
        yield World(running.client, running.gateway, keys, tenants, rows)


async def test_viewers_and_up_read_their_own_tenant_only(world: World) -> None:
    expected = {
        name: sum(1 for r in world.rows if r["tenant_id"] == world.tenants[name]) for name in ("acme", "globex")
    }
    for tenant in ("acme", "globex"):
        for role in ("viewer", "developer", "admin"):
            response = await world.client.get(f"{P}/summary", headers=world.auth(f"{tenant}-{role}"))
            assert response.status_code == 200, response.text
            assert response.json()["requests"] == expected[tenant]
    acme_models = await world.client.get(f"{P}/top?by=key&order=requests", headers=world.auth("acme-viewer"))
    assert sum(item["requests"] for item in acme_models.json()["data"]) <= expected["acme"]
    series = await world.client.get(f"{P}/timeseries?grain=1h", headers=world.auth("globex-viewer"))
    assert sum(point["requests"] for point in series.json()["data"]) == expected["globex"]
    guard = await world.client.get(f"{P}/guard", headers=world.auth("globex-viewer"))
    assert guard.json()["requests"] == expected["globex"]
    per_model = await world.client.get(f"{P}/metrics?by=model", headers=world.auth("acme-viewer"))
    assert sum(item["requests"] for item in per_model.json()["data"]) == expected["acme"]


async def test_credentials_roles_and_bad_input(world: World) -> None:
    assert (await world.client.get(f"{P}/summary")).status_code == 401
    assert (await world.client.get(f"{P}/summary", headers=world.auth("acme-service"))).status_code == 403
    bad_windows = (
        "from=yesterday",
        "grain=2h",
        "from=2026-01-02T00:00:00&to=2026-01-01T00:00:00",
        "to=0001-01-01T00:00:00",
        "from=9999-12-31T23:00:00",
    )
    for query in bad_windows:
        response = await world.client.get(f"{P}/summary?{query}", headers=world.auth("acme-viewer"))
        assert response.status_code == 400, query
        assert response.json()["error"]["message"].startswith("Invalid request")
    for query in ("by=colour", "order=fame", "limit=0"):
        response = await world.client.get(f"{P}/top?{query}", headers=world.auth("acme-viewer"))
        assert response.status_code == 400, query
    too_many = "from=2020-01-01T00:00:00&to=2026-01-01T00:00:00&grain=5m"
    assert (await world.client.get(f"{P}/timeseries?{too_many}", headers=world.auth("acme-viewer"))).status_code == 400


async def test_ingested_records_land_in_the_ledger_and_the_roll_ups(world: World) -> None:
    record = {
        "id": "app-42",
        "model": "external-model",
        "created": time.time() - 60,
        "latency_ms": 812.5,
        "response": {
            "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 31, "completion_tokens": 12, "prompt_tokens_details": {"cached_tokens": 4}},
        },
        "cost_usd": 0.002,
    }
    url = "/api/metrics/ingest"
    response = await world.client.post(url, json={"records": [record, record]}, headers=world.auth("acme-service"))
    assert response.status_code == 202, response.text
    ids = response.json()["ids"]
    assert len(ids) == 2 and ids[0] == ids[1]  # one client id: one interaction
    db = world.gateway.services.db
    ledger = Interaction.__table__

    async def stored() -> Any:
        async with db.engine.connect() as connection:
            return (await connection.execute(select(ledger).where(ledger.c.id == ids[0]))).mappings().first()

    row = await wait_until(stored, what="the ingested record is written")
    assert (row["endpoint"], row["model"], row["prompt_tokens"], row["cached_tokens"]) == (
        "external",
        "external-model",
        31,
        4,
    )
    assert row["tenant_id"] == world.tenants["acme"]
    insights = world.gateway.services.insights
    assert insights is not None
    await insights.rollup.run()
    top = await world.client.get(f"{P}/top?by=model&order=requests&limit=100", headers=world.auth("acme-viewer"))
    assert {"model": "external-model", "requests": 1, "tokens": 43, "cost_usd": 0.002} in top.json()["data"]
    other = await world.client.get(f"{P}/top?by=model&limit=100", headers=world.auth("globex-viewer"))
    assert all(item["model"] != "external-model" for item in other.json()["data"])
    # Validation, and the per-key rate limit (4 a minute in this world: one used above).
    bad = await world.client.post(url, json={"records": [{"latency_ms": 5}]}, headers=world.auth("acme-service"))
    assert bad.status_code == 400 and "model" in bad.json()["error"]["message"]
    assert (await world.client.post(url, json={"records": []}, headers=world.auth("acme-service"))).status_code == 400
    ancient = {"records": [{**record, "created": "0001-01-01T00:00:00"}]}
    assert (await world.client.post(url, json=ancient, headers=world.auth("acme-service"))).status_code == 400
    assert (await world.client.post(url, json={"records": [record]})).status_code == 401
    limited = await world.client.post(url, json={"records": [record]}, headers=world.auth("acme-service"))
    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_the_gateway_runs_the_roll_up_job(world: World) -> None:
    insights = world.gateway.services.insights
    assert insights is not None
    assert await insights.scheduler.submit_if_idle()
    jobs = world.gateway.services.jobs

    async def finished() -> Any:
        done, _ = await jobs.list_jobs(JobFilter(state=SUCCEEDED, kind=JOB_KIND), 5)
        return done

    (job,) = await wait_until(finished, what="the roll-up job ran")
    assert job.result["rows_read"] >= 0 and "pruned" in job.result


async def test_alerts_are_exposed_in_metrics(world: World) -> None:
    insights = world.gateway.services.insights
    assert insights is not None
    firing = await insights.alerts.refresh()
    acme = world.tenants["acme"]
    assert set(firing) >= {acme, world.tenants["globex"]}
    # The synthetic ledger has about 7% errors (acme: 13 of 146): over seed 000's 5% critical error rate.
    assert firing[acme][("error_rate", "critical")]
    text = (await world.client.get("/metrics", headers=world.auth("acme-viewer"))).text
    assert f'bastion_insights_alert{{alert="error_rate",severity="critical",tenant="{acme}"}} 1.0' in text
    assert f'bastion_insights_value{{metric="error_rate",tenant="{acme}"}}' in text


async def test_experiment_arms_and_alerts_of_the_caller_s_tenant(world: World) -> None:
    arms: dict[str, int] = {}
    for r in world.rows:
        if r["tenant_id"] == world.tenants["acme"] and r.get("experiment_id"):
            arm = f"{r['experiment_id']}:{r['experiment_variant']}"
            arms[arm] = arms.get(arm, 0) + 1
    response = await world.client.get(f"{P}/experiments", headers=world.auth("acme-viewer"))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert {item["arm"]: item["requests"] for item in data} == arms
    assert all(item["experiment_id"] == "exp_synthetic" and 0 <= (item["error_rate"] or 0) <= 1 for item in data)
    assert (await world.client.get(f"{P}/experiments?grain=2h", headers=world.auth("acme-viewer"))).status_code == 400
    alerts = await world.client.get(f"{P}/alerts", headers=world.auth("globex-viewer"))
    assert alerts.status_code == 200, alerts.text
    body = alerts.json()
    assert len(body["data"]) == 11
    assert {"alert", "severity", "firing", "value", "threshold"} <= set(body["data"][0])
    for path in ("experiments", "alerts", "stream"):
        assert (await world.client.get(f"{P}/{path}")).status_code == 401
        assert (await world.client.get(f"{P}/{path}", headers=world.auth("acme-service"))).status_code == 403


async def test_the_stream_refuses_a_bad_last_event_id(world: World) -> None:
    headers = {**world.auth("acme-viewer"), "last-event-id": "yesterday"}
    response = await world.client.get(f"{P}/stream", headers=headers)
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]["message"]
