"""The experiment stage's cost on the request path, and the cost of a results report, on one core.

    python bench/experiments_bench.py [--requests 100000] [--units 20000]

- ``stage, no experiment``: ``ExperimentStage.on_request`` for a tenant with no running experiment
  (the cached map is empty: one dictionary lookup);
- ``stage, assigned``: the same for a request of a running experiment's target (GrowthBook hash v2
  of the user id, the bucket ranges, the request rewritten to the variant, the header set);
- ``results``: ``experiment_results`` over ``--units`` users with three requests each, seeded in a
  SQLite file of its own (one GROUP BY over the ledger, the per-unit sums, every test and the SRM).

A benchmark, not a test: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from bastion.auth.principal import Principal, Role
from bastion.config.settings import Settings
from bastion.experiments.analysis import experiment_results
from bastion.experiments.service import ExperimentService
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.stages.experiment import ExperimentStage
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from bastion.store.models import Interaction, Tenant, new_id

DEFINITION = {
    "name": "bench",
    "target": {"model": "m"},
    "variants": [{"name": "control"}, {"name": "cool", "params": {"temperature": 0.1}}],
    "unit": "user",
    "metrics": ["latency_ms", "error_rate", "cost_usd"],
}


def _ctx(tenant_id: str, user: str) -> RequestContext:
    body = {"model": "m", "user": user, "messages": [{"role": "user", "content": "hi"}]}
    principal = Principal(tenant_id=tenant_id, tenant_name="t", role=Role.SERVICE, key_id="k1")
    return RequestContext("req_1", "openai", "chat", body, "m", Timing(), principal=principal)


async def _stage_us(stage: ExperimentStage, tenant_id: str, requests: int) -> float:
    contexts = [_ctx(tenant_id, f"user-{i}@example.com") for i in range(requests)]
    started = time.perf_counter()
    for ctx in contexts:
        await stage.on_request(ctx)
    return (time.perf_counter() - started) / requests * 1e6


async def main(requests: int, units: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_settings(Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}"))
        await upgrade(db.engine)
        async with db.transaction() as session:
            busy, idle = Tenant(id=new_id(), name="busy"), Tenant(id=new_id(), name="idle")
            session.add_all([busy, idle])
        service = ExperimentService(db, cache_ttl_s=3600)
        experiment = await service.create(busy.id, DEFINITION)
        await service.start(busy.id, experiment.id)

        async def no_default() -> str | None:
            return None

        stage = ExperimentStage(service, no_default)
        await _stage_us(stage, idle.id, 10)  # load both tenants' maps
        await _stage_us(stage, busy.id, 10)
        print(f"stage, no experiment: {await _stage_us(stage, idle.id, requests):.2f} us/request")
        print(f"stage, assigned:      {await _stage_us(stage, busy.id, requests):.2f} us/request")

        rng = random.Random(1)
        async with db.transaction() as session:
            for u in range(units):
                variant = "control" if u % 2 else "cool"
                for _ in range(3):
                    session.add(Interaction(
                        id=new_id(), tenant_id=busy.id, endpoint="chat", dialect="openai", model="m",
                        status=200 if rng.random() > 0.05 else 502, latency_ms=rng.gauss(300, 40),
                        cost_usd=0.001, experiment_id=experiment.id, experiment_variant=variant,
                        experiment_unit=f"u{u}",
                    ))  # fmt: skip
        started = time.perf_counter()
        result = await experiment_results(service, busy.id, experiment.id)
        elapsed = time.perf_counter() - started
        print(f"results: {units} units, {3 * units} requests: {elapsed * 1000:.0f} ms "
              f"(decision: {result['decision']['action']})")  # fmt: skip
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.units))
