"""A seeded synthetic ledger of 10,000 rows gives identical insight JSON on SQLite and on
PostgreSQL, percentiles included, and the figures agree with the ledger rows themselves."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bastion.config.settings import Settings
from bastion.insights import classify, query
from bastion.insights.histogram import BUCKETS, bucket_of, percentile
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.insights.bundle import bundle
from tests.insights.synthetic import BASE, NOW, TENANTS, insert, records, rollup


async def _insights(url: str, sqlite_template: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if url.startswith("sqlite:///"):
        shutil.copyfile(sqlite_template, url.removeprefix("sqlite:///"))
    db = Database.from_settings(Settings(database_url=url))
    try:
        await upgrade(db.engine)
        await insert(db, rows)
        await rollup(db).run()
        return await bundle(db)
    finally:
        await db.dispose()


async def test_the_same_ledger_gives_the_same_json_on_both_databases(
    sqlite_database_url: str, pg_database_url: str, sqlite_template: Path
) -> None:
    rows = records(10_000, seed=2026)
    on_sqlite = await _insights(sqlite_database_url, sqlite_template, rows)
    on_postgres = await _insights(pg_database_url, sqlite_template, rows)
    assert orjson.dumps(on_sqlite, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        on_postgres, option=orjson.OPT_SORT_KEYS
    )
    # The numbers are the ledger's: requests, tokens, cost and the latency percentiles of a tenant.
    for tenant in TENANTS:
        mine = [r for r in rows if r["tenant_id"] == tenant]
        summary = on_sqlite[f"{tenant}/all-1d/summary"]
        assert summary["requests"] == len(mine)
        assert summary["tokens"]["prompt"] == sum(r["prompt_tokens"] for r in mine)
        assert summary["cost_usd"] == round(sum(round(r["cost_usd"] * 1e9) for r in mine) / 1e9, 9)
        outcomes = Counter(classify.outcome(r["status"], r["error_code"], r["finish_reason"], r["guard"]) for r in mine)
        assert summary["outcomes"] == {k: outcomes.get(k, 0) for k in ("ok", "error", "blocked", "truncated")}
        histogram = [0] * BUCKETS
        for r in mine:
            histogram[bucket_of(round(r["latency_ms"] * 1000) / 1000.0)] += 1
        top = max(round(r["latency_ms"] * 1000) for r in mine) / 1000.0
        assert summary["latency_ms"]["p95"] == percentile(histogram, 0.95, top)
        assert summary["flagged"] == sum(1 for r in mine if r["flagged"])
        # A model filter reads the per-model level: the same numbers as the ledger's rows.
        filtered = on_sqlite[f"{tenant}/filtered"]
        assert filtered["requests"] == sum(1 for r in mine if r["model"] == "gpt-large")
        assert filtered["tokens"]["completion"] == sum(
            r["completion_tokens"] for r in mine if r["model"] == "gpt-large"
        )
        assert on_sqlite[f"{tenant}/key-filtered"]["requests"] == sum(1 for r in mine if r["key_id"] == "key_1")
    # Coarser grains add up to the same totals as finer ones.
    for tenant in TENANTS:
        by_day = on_sqlite[f"{tenant}/all-1d/summary"]
        by_hour = on_sqlite[f"{tenant}/all-1h/summary"]
        assert {k: v for k, v in by_day.items() if k != "window"} == {k: v for k, v in by_hour.items() if k != "window"}


async def test_a_window_is_widened_to_whole_buckets() -> None:
    since = datetime(2026, 11, 2, 10, 7, tzinfo=UTC)
    w = query.make_window("t", since, since + timedelta(hours=2), now=NOW)
    assert (w.grain, w.since, w.until) == ("5m", since.replace(minute=5), since.replace(hour=12, minute=10))
    w = query.make_window("t", BASE, BASE + timedelta(days=30), now=NOW)
    assert w.grain == "1d"
