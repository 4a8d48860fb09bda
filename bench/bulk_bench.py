"""What a bulk on an agent session costs (not collected by pytest).

    .venv/bin/python -m bench.bulk_bench [--items 1000] [--postgresql]

The in-process gateway with the default pipeline (auth, ledger, guard, cost, ...) and the fake
Anthropic upstream that reports prompt caching. One session on a 10,000-token vault prompt; one
bulk of ``--items`` items of 500 tokens each, in four operations. It measures:

* the submission's wall time (checks, one token count per item, the limiter, one job INSERT);
* the run's wall time from submission to the last stored item, and items per second (in process,
  the fake upstream answering at once: the gateway's own cost per item);
* a status read of the finished bulk (the job, every item, the aggregates);
* the ledger's cache counts and cost, against the same tokens uncached.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select

from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import Interaction
from bastion.vault.model import VersionSpec
from tests.bulk.support import CLAUDE, CLAUDE_UPSTREAM, GPT_UPSTREAM, bulk_settings, prefix_of
from tests.sessions.support import seed_keys
from tests.support.db import PG_ADMIN_DSN, pg_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway, wait_until


async def run(items: int, database_url: str, data_dir: Path) -> dict[str, Any]:
    with FakeUpstream() as fake:
        fake.default(CLAUDE_UPSTREAM, "prompt_cache")
        fake.default(GPT_UPSTREAM, "prompt_cache")
        settings = bulk_settings(database_url, data_dir, fake, {"max_items": max(items, 1)})
        db = Database.from_settings(settings)
        await upgrade(db.engine)
        keys = await seed_keys(db)
        await db.dispose()
        headers = {"authorization": f"Bearer {keys['ann']}"}
        async with running_gateway(settings, timeout_s=120) as env:
            vault, client = env.gateway.services.vault, env.client
            spec = VersionSpec(prefix_of(10_000), model=CLAUDE)
            await vault.create_prompt(keys["acme_id"], "bench-prompt", spec, actor="bench")
            start = await client.post("/api/v1/ai/sessions/start", json={"prompt_id": "bench-prompt"}, headers=headers)
            agent_id = start.json()["agent_id"]
            body = {
                "agent_id": agent_id,
                "items": [{"operation": f"op{i % 4}", "message": f"u{i} " * 500} for i in range(items)],
            }
            began = time.perf_counter()
            submitted = await client.post("/api/v1/ai/batch", json=body, headers=headers)
            submit_ms = (time.perf_counter() - began) * 1000
            assert submitted.status_code == 202, submitted.text
            status_url = f"/api/v1/ai/batch/{submitted.json()['id']}/status"

            async def finished() -> dict[str, Any] | None:
                answer = (await client.get(status_url, headers=headers)).json()
                return answer if answer["status"] == "succeeded" else None

            done = await wait_until(finished, timeout_s=600, what="the bulk ran", interval_s=0.05)
            run_s = time.perf_counter() - began
            reads = []
            for _ in range(10):
                t0 = time.perf_counter()
                await client.get(status_url, headers=headers)
                reads.append((time.perf_counter() - t0) * 1000)

            async def ledger() -> tuple[int, float, int, int, int] | None:
                async with env.gateway.services.db.session() as session:
                    row = (
                        await session.execute(
                            select(
                                func.count(),
                                func.sum(Interaction.cost_usd),
                                func.sum(Interaction.prompt_tokens),
                                func.sum(Interaction.cache_creation_input_tokens),
                                func.sum(Interaction.cached_tokens),
                            ).where(Interaction.session_id == agent_id)
                        )
                    ).one()
                return tuple(row) if row[0] == items else None  # type: ignore[return-value]

            count, cost, prompt, written, read = await wait_until(ledger, timeout_s=120, what="the ledger rows")
    return {
        "items": count,
        "submit_ms": submit_ms,
        "run_s": run_s,
        "items_per_s": items / run_s,
        "status_ms": statistics.median(reads),
        "cost": cost,
        "uncached": prompt * 3.0 / 1e6,
        "written": written,
        "read": read,
        "succeeded": done["counts"]["succeeded"],
    }


def report(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name}: {r['items']} items ({r['succeeded']} succeeded); submit {r['submit_ms']:.0f} ms; "
        f"run {r['run_s']:.1f} s ({r['items_per_s']:.0f} items/s); status read median {r['status_ms']:.0f} ms; "
        f"ledger: cache written "
        f"{r['written']}, read {r['read']}, cost ${r['cost']:.4f} vs ${r['uncached']:.4f} uncached "
        f"({100 * (1 - r['cost'] / r['uncached']):.1f}% less)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report("SQLite", await run(args.items, f"sqlite:///{tmp}/bench.db", Path(tmp) / "data"))
    if args.postgresql:
        name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                report("PostgreSQL", await run(args.items, pg_url(name), Path(tmp) / "data"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
