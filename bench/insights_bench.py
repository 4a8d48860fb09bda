"""Insights: the summary endpoint over the roll-ups of a million ledger rows, and roll-up throughput.

    .venv/bin/python bench/insights_bench.py [--ledger-rows 1000000] [--new-rows 10000] [--repeat 60]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

- summary: roll-up rows standing for ``--ledger-rows`` ledger rows over 30 days (one tenant, 8
  models, 20 keys, 3 prompts, 4 outcomes; about 116 requests per 5-minute bucket) are generated
  directly as 5-minute rows (the hours and days are then built by the roll-up's own SQL), and
  ``GET /api/v1/insights/summary`` is called through the app with a viewer key for windows of 1 hour,
  24 hours, 7 days and 30 days; p50 / p95 per window (target: p95 under 200 ms on SQLite).
- roll-up: ``--new-rows`` ledger rows written (through the ledger's own inserter) within the last
  ten minutes, then one incremental ``Rollup.run``; and the same rows spread over three days (many
  more buckets to recompute). Target: 10,000 new rows in under 2 s.

It is a benchmark: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bastion.api.app import create_app
from bastion.auth.keys import generate_key, hash_key, listed_prefix
from bastion.config.settings import Settings
from bastion.gateway.compose import build_gateway
from bastion.insights import tables
from bastion.insights.aggregate import floor
from bastion.insights.histogram import BUCKETS
from bastion.insights.rollup import Rollup
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import ApiKey, Tenant

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.insights.synthetic import insert as insert_ledger
from tests.insights.synthetic import records

MODELS = [f"model-{i}" for i in range(8)]
KEYS = [f"key_{i:02d}" for i in range(20)]
PROMPTS = ["", "support", "sales"]
OUTCOMES = ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "error", "blocked", "truncated")


def five_minute_rows(tenant_id: str, ledger_rows: int, end: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """5-minute roll-up rows standing for ``ledger_rows`` requests over the 30 days before ``end``."""
    buckets = 30 * 288
    per_bucket = max(1, ledger_rows // buckets)
    start = floor(end - timedelta(days=30), "5m")
    out: list[dict[str, Any]] = []
    for b in range(buckets):
        bucket = start + timedelta(minutes=5 * b)
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for _ in range(per_bucket):
            key = (rng.choice(MODELS), rng.choice(KEYS), rng.choice(PROMPTS), rng.choice(OUTCOMES))
            row = groups.get(key)
            if row is None:
                row = groups[key] = {
                    "grain": "5m", "bucket": bucket, "tenant_id": tenant_id, "model": key[0], "prompt_id": key[2],
                    "prompt_version": 1 if key[2] else 0, "key_id": key[1], "outcome": key[3], "arm": "",
                    **{name: 0 for name in (*tables.SUM_COLUMNS, *tables.MAX_COLUMNS)},
                }  # fmt: skip
            prompt, completion = rng.randint(10, 2000), rng.randint(0, 800)
            latency = int(rng.lognormvariate(6.5, 1.0) * 1000)
            row["requests"] += 1
            row["prompt_tokens"] += prompt
            row["completion_tokens"] += completion
            row["cost_nusd"] += rng.randint(0, 50_000_000)
            row["latency_us_sum"] += latency
            row["latency_max_us"] = max(row["latency_max_us"], latency)
            row[f"lat_{min(BUCKETS - 1, rng.randint(2, 10)):02d}"] += 1
        out.extend(groups.values())
    return out


async def seed_rollups(db: Database, tenant_id: str, ledger_rows: int, end: datetime) -> tuple[int, float]:
    started = time.perf_counter()
    rows = five_minute_rows(tenant_id, ledger_rows, end, random.Random(4))
    async with db.engine.begin() as connection:
        for start in range(0, len(rows), 2000):
            await connection.execute(insert(tables.rollups), rows[start : start + 2000])
    rollup = Rollup(db, Settings().insights)
    buckets = sorted({r["bucket"] for r in rows})
    for grain, finer in (("1h", "5m"), ("1d", "1h")):
        starts = sorted({floor(b, grain) for b in buckets})
        for i in range(0, len(starts), 48):
            await rollup._recompute_merged(grain, finer, starts[i : i + 48])
    return len(rows), time.perf_counter() - started


async def make_viewer(db: Database) -> tuple[str, str]:
    secret = generate_key()
    async with db.transaction() as session:
        tenant = Tenant(name="bench", settings={})
        session.add(tenant)
        await session.flush()
        session.add(
            ApiKey(
                tenant_id=tenant.id,
                name="viewer",
                prefix=listed_prefix(secret),
                key_hash=hash_key(secret),
                role="viewer",
            )
        )
        return tenant.id, secret


async def summary_bench(url: str, data_dir: Path, ledger_rows: int, repeat: int) -> None:
    settings = Settings.model_validate(
        {"database_url": url, "data_dir": str(data_dir), "local": {"enabled": False}, "ledger": {"enabled": False},
         "logging": {"level": "warning"}, "jobs": {"inprocess_workers": 0}}
    )  # fmt: skip
    db = Database.from_settings(settings)
    await upgrade(db.engine)
    tenant_id, key = await make_viewer(db)
    now = datetime.now(UTC)
    count, seconds = await seed_rollups(db, tenant_id, ledger_rows, now)
    await db.dispose()
    print(f"  seeded {count} 5-minute rows (+ hours, days) for {ledger_rows} ledger rows in {seconds:.1f} s")
    gateway = build_gateway(settings)
    app = create_app(settings, gateway)
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"authorization": f"Bearer {key}"}
            for label, span in (("1 hour", timedelta(hours=1)), ("24 hours", timedelta(days=1)),
                                ("7 days", timedelta(days=7)), ("30 days", timedelta(days=30))):  # fmt: skip
                params = {"from": (now - span).isoformat(), "to": now.isoformat()}
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = await client.get("/api/v1/insights/summary", params=params, headers=headers)
                    times.append((time.perf_counter() - started) * 1000.0)
                    assert response.status_code == 200, response.text
                body = response.json()
                times.sort()
                p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                print(
                    f"  summary {label:>8} (grain {body['window']['grain']}, {body['requests']} requests): "
                    f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms"
                )
    finally:
        await gateway.stop()


async def rollup_bench(url: str, new_rows: int) -> None:
    db = Database.from_settings(Settings(database_url=url))
    await upgrade(db.engine)
    try:
        now = datetime.now(UTC)
        for label, base, span in (("last 10 minutes", now - timedelta(minutes=10), 600.0),
                                  ("spread over 3 days", now - timedelta(days=3), 3 * 86400.0)):  # fmt: skip
            rows = records(new_rows, seed=len(label), base=base, span_s=span, start=0 if span == 600.0 else new_rows)
            await insert_ledger(db, rows)
            rollup = Rollup(db, Settings().insights)
            started = time.perf_counter()
            result = await rollup.run()
            seconds = time.perf_counter() - started
            print(
                f"  roll-up of {new_rows} new rows ({label}): {seconds:.2f} s "
                f"({result.buckets} buckets, {new_rows / seconds:.0f} rows/s)"
            )
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--new-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--pg", default=None, help="Also run on this PostgreSQL database (it is migrated).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite")
        await summary_bench(f"sqlite:///{tmp}/summary.db", Path(tmp), args.ledger_rows, args.repeat)
        await rollup_bench(f"sqlite:///{tmp}/rollup.db", args.new_rows)
        if args.pg:
            print("PostgreSQL")
            await rollup_bench(args.pg, args.new_rows)


if __name__ == "__main__":
    asyncio.run(main())
