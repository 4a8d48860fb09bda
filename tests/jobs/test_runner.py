"""Workers in process (the embedded broker), on SQLite and PostgreSQL: a job runs to its end,
failures are retried and then fail, cancellation stops a running handler within a second, the
start-up reconciler picks up what was queued, a stopping worker gives its job back, items
already done are skipped on the next attempt, and the job metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from bastion.errors import InvalidRequest
from bastion.jobs.context import JobContext
from bastion.jobs.model import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobView, NewJob
from bastion.jobs.registry import JobRegistry
from bastion.jobs.service import JobService
from bastion.observability.metrics import REGISTRY
from bastion.store.db import Database
from bastion.store.models_jobs import Job
from tests.jobs.support import service
from tests.support.harness import wait_until


class Handlers:
    """Job kinds for the tests, with what they did."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}  # item key -> times its side effect ran
        self.attempts = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.interrupted = asyncio.Event()
        self.registry = JobRegistry()
        self.registry.register("t.echo", self.echo)
        self.registry.register("t.flaky", self.flaky, max_attempts=3)
        self.registry.register("t.block", self.block)
        self.registry.register("t.items", self.items)
        self.registry.register("t.spin", self.spin)
        self.saw_flag = False

    async def echo(self, ctx: JobContext) -> Any:
        ctx.progress(1, 1)
        return {"echo": ctx.payload}

    async def flaky(self, ctx: JobContext) -> Any:
        self.attempts += 1
        if ctx.attempt < int(ctx.payload["succeed_on"]):
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return {"attempt": ctx.attempt}

    async def block(self, ctx: JobContext) -> Any:
        """Ignores cancellation requests; only task cancellation stops it."""
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.interrupted.set()
            raise
        return "released"

    async def spin(self, ctx: JobContext) -> Any:
        """Works in small steps, checking for a stop request between them."""
        self.started.set()
        while True:
            if ctx.cancel_requested:
                self.saw_flag = True
            ctx.check_cancelled()
            await asyncio.sleep(0.005)

    async def items(self, ctx: JobContext) -> Any:
        """Items 0..n-1: a side effect each, then the result; fails once at ``fail_at`` on attempt 1."""
        n, fail_at = int(ctx.payload["n"]), ctx.payload.get("fail_at")
        done = await ctx.done_items()
        for i in range(n):
            ctx.check_cancelled()
            key = f"item-{i}"
            if key in done:
                continue
            if i == fail_at and ctx.attempt == 1:
                raise RuntimeError("upstream down")
            self.calls[key] = self.calls.get(key, 0) + 1
            await ctx.write_item(key, {"i": i})
            ctx.progress(i + 1, n)
        return {"items": n}


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


@pytest.fixture
async def jobs(database: Database, handlers: Handlers) -> AsyncIterator[JobService]:
    svc = service(database, handlers.registry, workers=2)
    await svc.start()
    try:
        yield svc
    finally:
        handlers.release.set()
        await svc.stop()


async def finished(svc: JobService, job_id: str, timeout_s: float = 10.0) -> JobView:
    async def probe() -> JobView | None:
        job = await svc.get(job_id)
        return job if job.finished else None

    return await wait_until(probe, timeout_s, what=f"job {job_id} finished")


async def test_a_submitted_job_runs_to_success(jobs: JobService) -> None:
    job = await jobs.submit(NewJob("t.echo", payload={"x": 1}))
    done = await finished(jobs, job.id)
    assert done.state == SUCCEEDED and done.result == {"echo": {"x": 1}}
    assert done.attempts == 1 and done.progress_done == 1 and done.progress_total == 1
    assert done.started_at is not None and done.finished_at is not None and done.lease_owner is None


async def test_a_failing_job_is_retried_and_fails_after_its_attempts(jobs: JobService, handlers: Handlers) -> None:
    before = REGISTRY.get_sample_value("bastion_job_failures_total", {"kind": "t.flaky"}) or 0.0
    recovers = await jobs.submit(NewJob("t.flaky", payload={"succeed_on": 2}))
    done = await finished(jobs, recovers.id)
    assert done.state == SUCCEEDED and done.result == {"attempt": 2} and done.attempts == 2
    never = await jobs.submit(NewJob("t.flaky", payload={"succeed_on": 99}))
    failed = await finished(jobs, never.id)
    assert failed.state == FAILED and failed.attempts == 3
    assert failed.error == "RuntimeError: attempt 3 failed"
    assert REGISTRY.get_sample_value("bastion_job_failures_total", {"kind": "t.flaky"}) == before + 1
    assert (
        REGISTRY.get_sample_value("bastion_job_duration_seconds_count", {"kind": "t.flaky", "outcome": "retried"}) or 0
    ) >= 3


async def test_cancelling_a_running_job_stops_its_handler_within_a_second(jobs: JobService, handlers: Handlers) -> None:
    job = await jobs.submit(NewJob("t.block"))
    await wait_until(handlers.started.is_set, what="the handler started")
    assert (await jobs.get(job.id)).state == RUNNING
    asked = time.monotonic()
    assert (await jobs.cancel(job.id)).cancel_requested is True
    done = await finished(jobs, job.id)
    assert done.state == CANCELLED
    assert time.monotonic() - asked < 1.0


async def test_a_handler_checking_between_items_stops_cooperatively(jobs: JobService, handlers: Handlers) -> None:
    job = await jobs.submit(NewJob("t.spin"))
    await wait_until(handlers.started.is_set, what="the handler started")
    await jobs.cancel(job.id)
    done = await finished(jobs, job.id)
    assert done.state == CANCELLED
    assert handlers.saw_flag  # it stopped itself (JobCancelled), before the task was cancelled


async def test_cancelling_a_queued_job_means_it_never_runs(database: Database, handlers: Handlers) -> None:
    idle = service(database, handlers.registry, workers=0)
    await idle.start()
    try:
        job = await idle.submit(NewJob("t.echo"))
        assert (await idle.cancel(job.id)).state == CANCELLED
    finally:
        await idle.stop()
    running = service(database, handlers.registry, workers=1)
    await running.start()
    try:
        assert running.pool is not None
        assert await running.pool.reconcile() == 0
        assert (await running.get(job.id)).state == CANCELLED
    finally:
        await running.stop()


async def test_the_reconciler_runs_what_was_queued_before_the_workers_started(
    database: Database, handlers: Handlers
) -> None:
    idle = service(database, handlers.registry, workers=0)
    await idle.start()
    queued = [await idle.submit(NewJob("t.echo", payload=i)) for i in range(3)]
    await idle.stop()
    assert {(await idle.get(j.id)).state for j in queued} == {QUEUED}
    workers = service(database, handlers.registry, workers=2, poll_interval_s=60.0)  # no poll: the reconciler
    await workers.start()
    try:
        for job in queued:
            assert (await finished(workers, job.id)).result == {"echo": job.payload}
    finally:
        await workers.stop()


async def test_a_stopping_worker_gives_its_job_back(database: Database, handlers: Handlers) -> None:
    svc = service(database, handlers.registry, workers=1)
    await svc.start()
    job = await svc.submit(NewJob("t.block"))
    await wait_until(handlers.started.is_set, what="the handler started")
    await svc.stop()
    back = await svc.get(job.id)
    assert back.state == QUEUED and back.attempts == 0 and back.lease_owner is None
    handlers.release.set()
    again = service(database, handlers.registry, workers=1)
    await again.start()
    try:
        assert (await finished(again, job.id)).result == "released"
    finally:
        await again.stop()


async def test_a_retried_attempt_skips_the_items_already_done(jobs: JobService, handlers: Handlers) -> None:
    job = await jobs.submit(NewJob("t.items", payload={"n": 8, "fail_at": 5}))
    done = await finished(jobs, job.id)
    assert done.state == SUCCEEDED and done.attempts == 2 and done.progress_done == 8
    assert handlers.calls == {f"item-{i}": 1 for i in range(8)}  # items 0-4 were not run again
    assert [item.result for item in await jobs.items(job.id)] == [{"i": i} for i in range(8)]


async def test_retry_runs_a_failed_job_again(jobs: JobService) -> None:
    job = await jobs.submit(NewJob("t.flaky", payload={"succeed_on": 4}, max_attempts=1))
    assert (await finished(jobs, job.id)).state == FAILED
    retried = await jobs.retry(job.id)
    assert retried.state == QUEUED
    # Attempts start over: attempt 1 of a fresh budget fails again.
    assert (await finished(jobs, job.id)).state == FAILED


async def test_queued_and_running_gauges_follow_the_table(database: Database, handlers: Handlers) -> None:
    idle = service(database, handlers.registry, workers=0)
    await idle.start()
    try:
        for _ in range(2):
            await idle.submit(NewJob("t.echo"))
        await idle.refresh_metrics()
        assert REGISTRY.get_sample_value("bastion_jobs_queued", {"kind": "t.echo"}) == 2
        assert REGISTRY.get_sample_value("bastion_jobs_running", {"kind": "t.echo"}) == 0
    finally:
        await idle.stop()
    workers = service(database, handlers.registry, workers=1)
    await workers.start()
    try:

        async def drained() -> bool:
            await workers.refresh_metrics()
            return REGISTRY.get_sample_value("bastion_jobs_queued", {"kind": "t.echo"}) == 0

        await wait_until(drained, what="the queue drained")
        count = REGISTRY.get_sample_value(
            "bastion_job_duration_seconds_count", {"kind": "t.echo", "outcome": "succeeded"}
        )
        assert count is not None and count >= 2
    finally:
        await workers.stop()


async def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(
    database: Database, jobs: JobService, handlers: Handlers
) -> None:
    job = await jobs.submit(NewJob("t.block"))
    await wait_until(handlers.started.is_set, what="the handler started")
    # Another worker took the job over (as after a sweep of this one's expired lease).
    async with database.transaction() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(lease_owner="elsewhere"))
    await wait_until(handlers.interrupted.is_set, what="the handler was stopped")
    await wait_until(lambda: jobs.pool is not None and job.id not in jobs.pool.running, what="the attempt ended")
    after = await jobs.get(job.id)
    assert after.state == RUNNING and after.lease_owner == "elsewhere" and after.finished_at is None


def test_kinds_are_async_functions_with_sane_names() -> None:
    registry = JobRegistry()

    def sync_handler(ctx: JobContext) -> None:
        return None

    with pytest.raises(ValueError, match="async function"):
        registry.register("sync", sync_handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 to 64"):
        registry.register("k" * 65, Handlers().echo)
    registry.register("ok", Handlers().echo)
    with pytest.raises(ValueError, match="twice"):
        registry.register("ok", Handlers().echo)


async def test_a_kind_name_too_long_is_refused_at_submit(jobs: JobService) -> None:
    with pytest.raises(InvalidRequest):
        await jobs.submit(NewJob("k" * 65))
