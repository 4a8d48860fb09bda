"""Jobs through Redis Streams (taskiq-redis), on SQLite and PostgreSQL: a job submitted by one
process's service runs on another's workers, and its message is acknowledged once the attempt
ends; a retry and the sweeper hand jobs out through the stream too.

Uses the machine's Redis (``BASTION_TEST_REDIS``) with a stream and group of the test's own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bastion.jobs.context import JobContext
from bastion.jobs.model import FAILED, SUCCEEDED, JobView, NewJob
from bastion.jobs.registry import JobRegistry
from bastion.jobs.service import JobService
from bastion.store.db import Database
from tests.jobs.support import service
from tests.support.gateway import free_port
from tests.support.harness import wait_until
from tests.support.redis_server import PrivateRedis

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def stream() -> AsyncIterator[dict[str, str]]:
    names = {"redis_stream": f"bastion:test:jobs:{uuid.uuid4().hex}", "redis_group": f"g-{uuid.uuid4().hex[:8]}"}
    yield names
    client = Redis.from_url(REDIS_URL)
    try:
        await client.delete(names["redis_stream"])
    finally:
        await client.aclose()


def _registry(outcomes: list[str]) -> JobRegistry:
    async def work(ctx: JobContext) -> str:
        outcomes.append(ctx.id)
        if ctx.payload == "fail":
            raise ValueError("no")
        return f"done by {ctx.owner}"

    registry = JobRegistry()
    registry.register("r.work", work, max_attempts=1)
    return registry


async def _finished(svc: JobService, job_id: str) -> JobView:
    async def probe() -> JobView | None:
        job = await svc.get(job_id)
        return job if job.finished else None

    return await wait_until(probe, 15, what=f"job {job_id} finished")


async def test_a_job_submitted_in_one_process_runs_on_another_through_the_stream(
    database: Database, stream: dict[str, str]
) -> None:
    ran: list[str] = []
    client = service(database, _registry([]), workers=0, redis_url=REDIS_URL, **stream)
    workers = service(database, _registry(ran), workers=2, redis_url=REDIS_URL, **stream)
    await client.start()
    await workers.start()
    try:
        assert workers.pool is not None and workers.broker is not None and not workers.broker.local
        job = await client.submit(NewJob("r.work", payload="ok"))
        done = await _finished(client, job.id)
        assert done.state == SUCCEEDED and done.result == f"done by {workers.pool.owner}"
        assert ran == [job.id]
        failed = await _finished(client, (await client.submit(NewJob("r.work", payload="fail"))).id)
        assert failed.state == FAILED and failed.error == "ValueError: no"
        retried = await client.retry(failed.id)  # handed out through the stream again
        assert (await _finished(client, retried.id)).attempts == 1
        assert ran.count(failed.id) == 2

        redis = Redis.from_url(REDIS_URL)
        try:

            async def acknowledged() -> bool:
                pending = await redis.xpending(stream["redis_stream"], stream["redis_group"])
                return int(pending["pending"]) == 0

            await wait_until(acknowledged, 10, what="every message acknowledged")
            assert int(await redis.xlen(stream["redis_stream"])) >= 3
        finally:
            await redis.aclose()
    finally:
        await workers.stop()
        await client.stop()


@pytest.mark.integration
async def test_workers_recover_when_redis_comes_up_after_them(database: Database) -> None:
    """Redis down when the workers start and when the job is submitted: once it answers, the
    receiver makes its group and the sweeper hands the unclaimed job out again."""
    ran: list[str] = []
    server = PrivateRedis(free_port())
    svc = service(database, _registry(ran), workers=1, redis_url=server.url, requeue_unclaimed_s=0.3)
    await svc.start()
    try:
        job = await svc.submit(NewJob("r.work", payload="ok"))  # the message cannot be sent
        assert (await svc.get(job.id)).state == "queued"
        await asyncio.to_thread(server.start)
        assert (await _finished(svc, job.id)).state == SUCCEEDED
        assert ran == [job.id]
    finally:
        await svc.stop()
        server.stop()
