"""Job throughput: jobs per second and items per second through the job system, embedded
(SQLite, the in-process broker) and with Redis Streams + PostgreSQL (when both answer).

    .venv/bin/python bench/jobs_bench.py [--jobs 300] [--items 2000] [--workers 4]
        [--redis redis://127.0.0.1:6379/5] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

- jobs/s: ``--jobs`` no-op jobs submitted at once, from submit to the last one succeeded, with
  ``--workers`` jobs at a time in this process (with Redis: two worker services, as two
  ``bastion worker`` processes would be, each running ``--workers``).
- items/s: one job of ``--items`` items, each a ``write_item`` (an idempotent insert of its result,
  one transaction each), then the same with ``write_items`` in batches of 100.

Everything runs in this one process, so the figures are the job system's own cost (database,
broker, receiver), not a handler's. It is a benchmark: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bastion.config.settings import LoggingSettings, Settings
from bastion.config.work_settings import JobsSettings
from bastion.jobs.context import JobContext
from bastion.jobs.model import ItemOutcome, JobView, NewJob
from bastion.jobs.registry import JobRegistry
from bastion.jobs.service import JobService
from bastion.observability.logging import configure_logging
from bastion.store.db import Database
from bastion.store.migrate import upgrade


async def noop(ctx: JobContext) -> Any:
    return None


async def items_one_by_one(ctx: JobContext) -> Any:
    for i in range(int(ctx.payload["items"])):
        await ctx.write_item(f"i{i:06d}", {"i": i})
    return None


async def items_batched(ctx: JobContext) -> Any:
    n = int(ctx.payload["items"])
    for start in range(0, n, 100):
        await ctx.write_items([ItemOutcome(f"i{i:06d}", {"i": i}) for i in range(start, min(n, start + 100))])
    return None


def registry() -> JobRegistry:
    kinds = JobRegistry()
    kinds.register("bench.noop", noop)
    kinds.register("bench.items", items_one_by_one)
    kinds.register("bench.items_batched", items_batched)
    return kinds


def job_settings(suffix: str) -> JobsSettings:
    return JobsSettings(
        poll_interval_s=0.05,
        sweep_interval_s=1.0,
        cancel_poll_s=0.5,
        redis_stream=f"bastion:bench:jobs:{suffix}",
        redis_group=f"bench-{suffix}",
    )


async def wait_all(service: JobService, ids: list[str]) -> None:
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            job: JobView = await service.get(job_id)
            if job.finished:
                pending.discard(job_id)
        if pending:
            await asyncio.sleep(0.01)


async def measure(client: JobService, label: str, jobs: int, items: int) -> None:
    started = time.perf_counter()
    ids = [(await client.submit(NewJob("bench.noop"))).id for _ in range(jobs)]
    submitted = time.perf_counter() - started
    await wait_all(client, ids)
    elapsed = time.perf_counter() - started
    print(f"{label:<34} jobs: {jobs / elapsed:8.0f} jobs/s  (submit {jobs / submitted:7.0f}/s)")
    for kind, name in (("bench.items", "one write each"), ("bench.items_batched", "batches of 100")):
        started = time.perf_counter()
        job = await client.submit(NewJob(kind, payload={"items": items}))
        await wait_all(client, [job.id])
        elapsed = time.perf_counter() - started
        print(f"{label:<34} items ({name}): {items / elapsed:8.0f} items/s")


@contextlib.asynccontextmanager
async def services(db: Database, redis_url: str | None, workers: int) -> AsyncIterator[JobService]:
    suffix = uuid.uuid4().hex[:8]
    settings = job_settings(suffix)
    if redis_url is None:
        service = JobService(db, settings, None, registry(), workers=workers)
        await service.start()
        try:
            yield service
        finally:
            await service.stop()
        return
    client = JobService(db, settings, redis_url, registry(), workers=0)
    pool = [JobService(db, settings, redis_url, registry(), workers=workers) for _ in range(2)]
    for service in (client, *pool):
        await service.start()
    try:
        yield client
    finally:
        for service in (*pool, client):
            await service.stop()
        redis = Redis.from_url(redis_url)
        await redis.delete(settings.redis_stream)
        await redis.aclose()


async def embedded(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_settings(Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}"))
        await upgrade(db.engine)
        try:
            async with services(db, None, args.workers) as client:
                await measure(client, f"embedded (SQLite, {args.workers} workers)", args.jobs, args.items)
        finally:
            await db.dispose()


async def with_redis(args: argparse.Namespace) -> None:
    try:
        redis = Redis.from_url(args.redis, socket_connect_timeout=1)
        await redis.ping()
        await redis.aclose()
        admin = await asyncpg.connect(args.pg, timeout=2)
    except Exception as exc:
        print(f"with Redis + PostgreSQL: skipped ({type(exc).__name__}: {exc})")
        return
    name = f"bastion_jobs_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = args.pg.rsplit("/", 1)[0]
    db = Database.from_settings(Settings(database_url=f"{base}/{name}"))
    try:
        await upgrade(db.engine)
        async with services(db, args.redis, args.workers) as client:
            label = f"Redis + PostgreSQL (2 x {args.workers} workers)"
            await measure(client, label, args.jobs, args.items)
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    configure_logging(LoggingSettings(level="warning"))

    async def run() -> None:
        await embedded(args)
        await with_redis(args)

    asyncio.run(run())


if __name__ == "__main__":
    main()
