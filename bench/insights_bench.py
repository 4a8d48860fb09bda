"""Insights: the summary endpoint over the roll-ups of a million ledger rows, and roll-up throughput.

    .venv/bin/python bench/insights_bench.py [--ledger-rows 1000000] [--new-rows 10000] [--repeat 60]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--rollup-only]

- summary: roll-up rows standing for ``--ledger-rows`` ledger rows over 30 days (one tenant, 8
  models, 20 keys, 3 prompts, 4 outcomes: nearly one hourly row per 1.3 requests) are generated
  directly (hours for 30 days, 5-minute rows for the last day; days and tenant totals by the
  roll-up's own SQL), and ``GET /api/v1/insights/summary`` is called through the app with a viewer
  key for windows of 1 hour, 24 hours, 7 days and 30 days, without a filter and for one model;
  p50 / p95 per window (target: p95 under 200 ms on SQLite).
- roll-up: ``--new-rows`` ledger rows written (through the ledger's own inserter) within the last
  ten minutes, then one incremental ``Rollup.run``; and the same rows spread over three days (many
  more buckets to recompute). Target: 10,000 new rows in under 2 s.

It is a benchmark: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from bastion.insights.rollup import Rollup, _merge
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


def generated_rows(
    tenant_id: str, grain: str, start: datetime, buckets: int, per_bucket: int, rng: random.Random
) -> list[dict[str, Any]]:
    """Roll-up rows of ``grain``: ``per_bucket`` random requests in each of ``buckets`` buckets."""
    out: list[dict[str, Any]] = []
    width = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}[grain]
    for b in range(buckets):
        bucket = start + b * width
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for _ in range(per_bucket):
            key = (rng.choice(MODELS), rng.choice(KEYS), rng.choice(PROMPTS), rng.choice(OUTCOMES))
            row = groups.get(key)
            if row is None:
                row = groups[key] = {
                    "grain": grain, "bucket": bucket, "tenant_id": tenant_id, "model": key[0], "prompt_id": key[2],
                    "prompt_version": 1 if key[2] else 0, "key_id": key[1], "outcome": key[3], "arm": "",
                    **{name: 0 for name in (*tables.SUM_COLUMNS, *tables.MAX_COLUMNS)},
                }  # fmt: skip
            latency = int(rng.lognormvariate(6.5, 1.0) * 1000)
            row["requests"] += 1
            row["prompt_tokens"] += rng.randint(10, 2000)
            row["completion_tokens"] += rng.randint(0, 800)
            row["cost_nusd"] += rng.randint(0, 50_000_000)
            row["latency_us_sum"] += latency
            row["latency_max_us"] = max(row["latency_max_us"], latency)
            row[f"lat_{min(BUCKETS - 1, rng.randint(2, 10)):02d}"] += 1
        out.extend(groups.values())
    return out


async def seed_rollups(db: Database, tenant_id: str, ledger_rows: int, end: datetime) -> tuple[int, float]:
    """Hourly rows for 30 days and 5-minute rows for the last day (a window of up to 6 hours reads
    5-minute rows, longer ones hours or days), generated directly for ``ledger_rows`` requests
    spread evenly; days and every grain's summary levels are then built by the roll-up's own SQL."""
    started = time.perf_counter()
    rng = random.Random(4)
    hours = 30 * 24
    first_hour = floor(end, "1h") - timedelta(hours=hours - 1)
    rows = generated_rows(tenant_id, "1h", first_hour, hours, ledger_rows // hours, rng)
    first_5m = floor(end, "5m") - timedelta(minutes=5 * 287)
    rows += generated_rows(tenant_id, "5m", first_5m, 288, ledger_rows // (hours * 12), rng)
    async with db.engine.begin() as connection:
        for start in range(0, len(rows), 2000):
            await connection.execute(insert(tables.rollups), rows[start : start + 2000])
    hour_starts = [first_hour + timedelta(hours=i) for i in range(hours)]
    five_starts = [first_5m + timedelta(minutes=5 * i) for i in range(288)]
    day_starts = sorted({floor(h, "1d") for h in hour_starts})
    async with db.engine.begin() as connection:
        await _merge(connection, "1d", day_starts, source="1h")
        for level in tables.LEVELS:
            await _merge(connection, "5m", five_starts, level=level)
            await _merge(connection, "1h", hour_starts, level=level)
            await _merge(connection, "1d", day_starts, level=level)
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
    print(
        f"  seeded {count} hourly and 5-minute rows (+ days, totals) for {ledger_rows} ledger rows in {seconds:.1f} s"
    )
    gateway = build_gateway(settings)
    app = create_app(settings, gateway)
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"authorization": f"Bearer {key}"}
            spans = (("1 hour", timedelta(hours=1)), ("24 hours", timedelta(days=1)),
                     ("7 days", timedelta(days=7)), ("30 days", timedelta(days=30)))  # fmt: skip
            for (label, span), model in itertools.product(spans, (None, MODELS[0])):
                params = {"from": (now - span).isoformat(), "to": now.isoformat()}
                if model is not None:
                    params["model"] = model
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = await client.get("/api/v1/insights/summary", params=params, headers=headers)
                    times.append((time.perf_counter() - started) * 1000.0)
                    assert response.status_code == 200, response.text
                body = response.json()
                times.sort()
                p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                scope = f"model {model}" if model else "all"
                print(
                    f"  summary {label:>8}, {scope:>13} (grain {body['window']['grain']}, "
                    f"{body['requests']} requests): "
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
    parser.add_argument("--rollup-only", action="store_true", help="Skip the summary part.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite")
        if not args.rollup_only:
            await summary_bench(f"sqlite:///{tmp}/summary.db", Path(tmp), args.ledger_rows, args.repeat)
        await rollup_bench(f"sqlite:///{tmp}/rollup.db", args.new_rows)
        if args.pg:
            print("PostgreSQL")
            await rollup_bench(args.pg, args.new_rows)


if __name__ == "__main__":
    asyncio.run(main())
