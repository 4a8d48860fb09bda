"""Everything the insights queries answer about a ledger, as one JSON-able dict."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bastion.insights import query
from bastion.store.db import Database
from tests.insights.synthetic import BASE, NOW, TENANTS


async def bundle(db: Database) -> dict[str, Any]:
    out: dict[str, Any] = {}
    windows = {
        "all-1d": (BASE, BASE + timedelta(days=3), "1d"),
        "all-1h": (BASE, BASE + timedelta(days=3), "1h"),
        "six-hours-5m": (BASE + timedelta(hours=30), BASE + timedelta(hours=36), "5m"),
        "default-grain": (BASE + timedelta(hours=20), BASE + timedelta(hours=44), None),
    }
    for tenant in TENANTS:
        for name, (since, until, grain) in windows.items():
            w = query.make_window(tenant, since, until, grain=grain, now=NOW)
            key = f"{tenant}/{name}"
            out[f"{key}/summary"] = await query.summary(db, w)
            out[f"{key}/timeseries"] = await query.timeseries(db, w)
            out[f"{key}/guard"] = await query.guard_panel(db, w)
            for by in ("model", "key", "prompt", "arm"):
                out[f"{key}/top-{by}"] = await query.top(db, w, by, "cost", 5)
                out[f"{key}/metrics-{by}"] = await query.breakdown(db, w, by)
        w = query.make_window(tenant, BASE, BASE + timedelta(days=3), grain="1d", model="gpt-large", now=NOW)
        out[f"{tenant}/filtered"] = await query.summary(db, w)
        w = query.make_window(tenant, BASE, BASE + timedelta(days=3), grain="1h", key_id="key_1", now=NOW)
        out[f"{tenant}/key-filtered"] = await query.summary(db, w)
        out[f"{tenant}/key-filtered-series"] = await query.timeseries(db, w)
    return out
