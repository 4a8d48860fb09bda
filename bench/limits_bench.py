"""Micro-benchmark of the limits stage's request path: admission + settlement per request.

    python -m bench.limits_bench                    # memory store
    python -m bench.limits_bench --redis redis://127.0.0.1:6379/0

Each request is a realistic chat call (system + user message, max_tokens) to a priced model, by a
key with requests- and tokens-per-minute limits, under the seed budgets (per-request cap, tenant
daily budget): every rule the stage has is exercised. Reported: CPU and wall time per request,
sequentially (one request at a time: the latency the stage adds) and with 64 concurrent requests
(throughput, Redis calls pipelined), and Redis round trips (writes) per request. Each request
sends two commands to Redis (admission, settlement); settlements ride along with admissions.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from typing import Any

from bastion.auth.principal import Principal, Role
from bastion.config.settings import Settings
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.stages.cost import CostStage
from bastion.gateway.stages.limits import LimitsStage
from bastion.limits.failover import FailoverStore
from bastion.limits.redis_store import RedisStore, Settler
from bastion.limits.seed import LedgerSeeder
from bastion.limits.service import LimitsService, build_store
from bastion.providers.base import Usage
from bastion.routing.build import build_router
from bastion.spend.routes import RoutePricing

BODY: dict[str, Any] = {
    "model": "bench-model",
    "max_tokens": 64,
    "temperature": 0.2,
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
}


def _settings(redis_url: str | None) -> Settings:
    return Settings.model_validate(
        {
            "local": {"enabled": False},
            "redis_url": redis_url,
            "models": [{"name": "bench-model", "deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
            "limits": {"key": {"rpm": 10_000_000, "tpm": 10_000_000_000}, "redis_prefix": f"bench:{uuid.uuid4().hex}:"},
        }
    )


def _context(principal: Principal) -> RequestContext:
    ctx = RequestContext(
        request_id="req_" + uuid.uuid4().hex[:24],
        dialect="openai",
        endpoint="chat",
        body=BODY,
        model="bench-model",
        timing=Timing(),
    )
    ctx.principal = principal
    return ctx


async def _one(limits: LimitsStage, cost: CostStage, principal: Principal, deployment: str) -> None:
    ctx = _context(principal)
    await limits.on_request(ctx)
    # What the router and usage stage would have filled in, then the cost and limits completions.
    ctx.trace.alias, ctx.trace.deployment, ctx.trace.upstream_model = "bench-model", deployment, "gpt-4o-mini"
    ctx.usage = Usage(prompt_tokens=24, completion_tokens=12)
    await cost.on_complete(ctx)
    await limits.on_complete(ctx)


def _settler(service: LimitsService) -> Settler | None:
    """The Redis store's background settler (None on the memory store)."""
    store = service.store.primary if isinstance(service.store, FailoverStore) else service.store
    return store.settler if isinstance(store, RedisStore) else None


async def run(redis_url: str | None, requests: int) -> dict[str, float]:
    settings = _settings(redis_url)
    router = build_router(settings)
    pricing = RoutePricing.from_settings(settings, router)
    service = LimitsService(settings, pricing, build_store(settings), LedgerSeeder(None))
    limits, cost = LimitsStage(service), CostStage(pricing)
    await service.start()
    deployment = router.unique_groups()[0].targets[0].id
    principal = Principal(
        tenant_id="t-bench", tenant_name="bench", role=Role.SERVICE, key_id="k-bench", tenant_settings={}
    )
    results: dict[str, float] = {}
    try:
        for _ in range(200):  # warm-up: caches, seeding, script load
            await _one(limits, cost, principal, deployment)
        channel = service.redis_channel

        async def sequential() -> None:
            for _ in range(requests):
                await _one(limits, cost, principal, deployment)

        async def concurrent() -> None:
            for _ in range(requests // 64):
                await asyncio.gather(*(_one(limits, cost, principal, deployment) for _ in range(64)))

        for name, phase, count in (
            ("sequential", sequential, requests),
            ("concurrent64", concurrent, requests // 64 * 64),
        ):
            batches = channel.batches if channel else 0
            before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            await phase()
            settler = _settler(service)
            if settler is not None:
                assert await settler.drain(10.0)
            after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
            results[f"{name}_user_us"] = (after.ru_utime - before.ru_utime) / count * 1e6
            results[f"{name}_sys_us"] = (after.ru_stime - before.ru_stime) / count * 1e6
            results[f"{name}_wall_us"] = elapsed / count * 1e6
            if channel is not None:
                results[f"{name}_round_trips"] = (channel.batches - batches) / count
    finally:
        await service.stop()
        if redis_url:
            from bastion.store.redis import create_redis

            redis = create_redis(redis_url)
            keys = [key async for key in redis.scan_iter(match=settings.limits.redis_prefix + "*", count=1000)]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", help="Redis URL (default: the memory store)")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    try:  # the gateway runs on uvloop (uvicorn's default when installed): measure on it too
        import uvloop

        results = uvloop.run(run(args.redis, args.requests))
    except ImportError:
        results = asyncio.run(run(args.redis, args.requests))
    store = "redis" if args.redis else "memory"
    for name, value in results.items():
        print(
            f"{store:6} {name:32} {value:10.3f}"
            if name.endswith("round_trips")
            else f"{store:6} {name:32} {value:10.1f}"
        )


if __name__ == "__main__":
    main()
