"""Micro-benchmark of the auth stage's per-request cost (not a test; run it by hand):

    .venv/bin/python -m bench.auth_bench [--iterations 200000] [--redis redis://127.0.0.1:6379/0]

Measures ``AuthStage.on_request`` on a warm cache (the steady state of a gateway): an API key with
the file epoch (one process or several on one machine), the same with the Redis epoch (one GET per
request), a JWT, and an anonymous call with auth off. The headers are Starlette's, as in a request.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import uvloop
from redis.asyncio import Redis
from starlette.datastructures import Headers

from bastion.auth.principal import Role
from bastion.gateway.compose import build_services
from bastion.gateway.context import RequestContext, Timing
from bastion.gateway.services import Services
from bastion.gateway.stages.auth import AuthStage
from bastion.store.migrate import upgrade
from tests.auth.support import seed_key, seed_user, settings_for

SECRET = "bench-secret-" + "s" * 64


def _context(headers: dict[str, str]) -> RequestContext:
    raw = Headers(raw=[(k.encode(), v.encode()) for k, v in headers.items()] + [(b"user-agent", b"bench")])
    return RequestContext(
        request_id="req_bench", dialect="openai", endpoint="chat", body={}, model="m", timing=Timing(), headers=raw
    )


async def _measure(stage: AuthStage, headers: dict[str, str], iterations: int, rounds: int = 5) -> tuple[float, float]:
    """(wall µs, CPU µs) per request: the best of ``rounds`` runs, since a shared machine only ever
    adds time. CPU time also counts the event loop's work for Redis replies; wall time adds the
    round trip."""
    ctx = _context(headers)
    for _ in range(min(1000, iterations)):  # warm the cache and the interpreter
        await stage.on_request(ctx)
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            await stage.on_request(ctx)
        best_wall = min(best_wall, (time.perf_counter() - wall) / iterations * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / iterations * 1e6)
    return best_wall, best_cpu


async def _measure_concurrent(stage: AuthStage, headers: dict[str, str], iterations: int, tasks: int = 64) -> float:
    """CPU µs per request with ``tasks`` requests in flight, as under load: concurrent epoch GETs
    share the channel's writes."""
    ctx = _context(headers)

    async def worker() -> None:
        for _ in range(iterations // tasks):
            await stage.on_request(ctx)

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.process_time() - cpu) / (iterations // tasks * tasks) * 1e6


def _services(workdir: Path, redis_url: str | None, **auth: Any) -> Services:
    """The services of a gateway with these auth settings, as the composition root builds them."""
    settings = settings_for(f"sqlite:///{workdir / 'bastion.db'}", workdir, redis_url=redis_url, auth=auth)
    return build_services(settings)


async def main(iterations: int, redis_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        jwt_settings = {"enabled": True, "secret": SECRET}
        keyed = _services(workdir, None, jwt=jwt_settings)
        stage = AuthStage(keyed.authenticator)
        await upgrade(keyed.db.engine)
        secret, _ = await seed_key(keyed.db, "acme", Role.SERVICE)
        await seed_user(keyed.db, "acme", "dev@acme.io")
        token = jwt.encode({"sub": "dev@acme.io", "tenant": "acme", "exp": int(time.time()) + 3600}, SECRET)
        results = {
            "api key, file epoch": await _measure(stage, {"authorization": f"Bearer {secret}"}, iterations),
            "x-api-key, file epoch": await _measure(stage, {"x-api-key": secret}, iterations),
            "jwt, file epoch": await _measure(stage, {"authorization": f"Bearer {token}"}, iterations),
        }
        anonymous = _services(workdir, None, enabled=False)
        await anonymous.authenticator.start()
        results["anonymous (auth off)"] = await _measure(AuthStage(anonymous.authenticator), {}, iterations)
        epoch_key = f"bench:auth:epoch:{uuid.uuid4().hex}"
        with_redis = _services(workdir, redis_url, epoch_key=epoch_key)
        redis_stage = AuthStage(with_redis.authenticator)
        try:
            headers = {"authorization": f"Bearer {secret}"}
            results["api key, redis epoch"] = await _measure(redis_stage, headers, max(1000, iterations // 10))
            concurrent = await _measure_concurrent(redis_stage, headers, max(6400, iterations // 2))
        finally:
            cleanup = Redis.from_url(redis_url)
            await cleanup.delete(epoch_key)
            await cleanup.aclose()
        print(f"{'case':26s} {'wall us':>9s} {'cpu us':>9s}  (per request, best of 5 rounds)")
        for name, (wall, cpu) in results.items():
            print(f"{name:26s} {wall:9.2f} {cpu:9.2f}")
        print(f"{'api key, redis, 64 in flight':26s} {'':9s} {concurrent:9.2f}")
        for each in (keyed, anonymous, with_redis):
            await each.authenticator.aclose()
            await each.db.dispose()


async def _redis_get_cost(redis_url: str, iterations: int) -> float:
    redis = Redis.from_url(redis_url)
    try:
        await redis.get("bench:none")
        started = time.perf_counter()
        for _ in range(iterations):
            await redis.get("bench:none")
        return (time.perf_counter() - started) / iterations * 1e6
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    # uvloop, as ``bastion serve`` runs: it changes what a Redis round trip costs.
    uvloop.run(main(args.iterations, args.redis))
    print(f"{'(redis-py GET, reference)':26s} {asyncio.run(_redis_get_cost(args.redis, 5000)):9.2f}")
