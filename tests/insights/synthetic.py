"""A seeded synthetic ledger: journal records spread over three days, three tenants, models, keys,
prompts, outcomes, guard verdicts, cache hits and experiment arms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bastion.config.insights_settings import InsightsSettings
from bastion.insights import tables
from bastion.insights.rollup import Rollup
from bastion.ledger.store import RowInserter
from bastion.store.db import Database

BASE = datetime(2026, 11, 2, tzinfo=UTC)
NOW = BASE + timedelta(days=3, hours=1)
TENANTS = ("tenant_a", "tenant_b", "tenant_c")
MODELS = ("gpt-small", "gpt-large", "claude-mid", "local")
SCANNERS = ("injection", "pii", "secrets", "leak")


def _guard(rng: random.Random, blocked: bool) -> dict[str, Any] | None:
    if rng.random() < 0.3:
        return None
    sides: dict[str, Any] = {}
    action = "allow"
    for side in ("input", "output"):
        scanners = {}
        for name in rng.sample(SCANNERS, 2):
            flagged = rng.random() < 0.15 or (blocked and side == "input")
            verdict_action = "block" if blocked and flagged and side == "input" else ("flag" if flagged else "allow")
            findings = {"X": rng.randint(1, 3)} if flagged else {}
            scanners[name] = {"score": 0.5, "flagged": flagged, "action": verdict_action, "findings": findings}
        sides[side] = {"action": "allow", "flagged": any(v["flagged"] for v in scanners.values()), "scanners": scanners}
    if blocked:
        action = "block"
    return {"action": action, "flagged": any(s["flagged"] for s in sides.values()), **sides}


def records(
    count: int, seed: int = 4, *, start: int = 0, span_s: float = 3 * 86400, base: datetime = BASE
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + count):
        kind = rng.random()
        blocked = kind < 0.05
        error = 0.05 <= kind < 0.12
        truncated = 0.12 <= kind < 0.2
        stream = rng.random() < 0.5
        guard = _guard(rng, blocked)
        prompt_tokens = 0 if blocked else rng.randint(0, 2000)
        completion_tokens = 0 if blocked or error else rng.randint(0, 800)
        extra: dict[str, Any] = {}
        if rng.random() < 0.1:
            extra["cache"] = rng.choice(("hit", "semantic-hit", "miss"))
        experiment: dict[str, Any] = {}
        if rng.random() < 0.2:
            experiment = {"experiment_id": "exp_synthetic", "experiment_variant": rng.choice(("control", "variant"))}
        ts = (base + timedelta(seconds=rng.uniform(0, span_s))).timestamp()
        out.append(
            {
                "v": 1,
                "id": f"req_{i:024x}",
                "ts": ts,
                "tenant_id": rng.choice(TENANTS),
                **experiment,
                "user_id": None,
                "key_id": f"key_{rng.randint(0, 5)}",
                "endpoint": "chat",
                "dialect": "openai",
                "model": rng.choice(MODELS),
                "stream": stream,
                "status": 400 if blocked else (rng.choice((429, 500, 502)) if error else 200),
                "error_code": "content_blocked" if blocked else ("upstream_error" if error else None),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cached_tokens": rng.randint(0, prompt_tokens // 2) if prompt_tokens else 0,
                "cost_usd": round(rng.uniform(0, 0.05), 7) if not blocked else 0.0,
                "latency_ms": rng.lognormvariate(6.5, 1.2),
                "ttft_ms": rng.lognormvariate(5.5, 1.0) if stream else None,
                "retries": rng.choice((0, 0, 0, 0, 1, 2)),
                "finish_reason": "length" if truncated else ("stop" if not (blocked or error) else None),
                "content_mode": "metadata",
                "prompt_id": rng.choice((None, "support", "sales")),
                "prompt_version": rng.choice((1, 2)),
                "flagged": bool(guard and guard["flagged"]),
                "guard": guard,
                "extra": extra or None,
            }
        )
    for record in out:
        if record["prompt_id"] is None:
            record["prompt_version"] = None
    return out


async def insert(db: Database, rows: list[dict[str, Any]]) -> None:
    await RowInserter(db).insert(rows)


def rollup(db: Database, **overrides: Any) -> Rollup:
    settings = InsightsSettings.model_validate(overrides)
    return Rollup(db, settings, clock=lambda: NOW)


async def dump(db: Database) -> list[tuple[Any, ...]]:
    """Every roll-up and guard row, sorted, as plain tuples."""
    out: list[tuple[Any, ...]] = []
    async with db.engine.connect() as connection:
        for table in (tables.rollups, tables.guard):
            rows = (await connection.execute(select(table))).all()
            out.extend(sorted((table.name, *(int(v) if isinstance(v, int) else v for v in row)) for row in rows))
    return out
