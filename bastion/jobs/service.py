"""The job system of one process: submit, read, cancel and retry jobs (the admin API, the CLI and
the features that create jobs), and, when this process runs workers, the worker pool.

``workers`` is how many jobs this process runs at once: ``jobs.inprocess_workers`` for
``bastion serve`` (unset: 2 on the embedded default, 0 with Redis), ``--concurrency`` for
``bastion worker``, 0 for the CLI. Background work never runs on the request path: submitting
is one INSERT and one broker message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from bastion.config.settings import Settings
from bastion.config.work_settings import JobsSettings
from bastion.errors import InvalidRequest
from bastion.jobs.broker import JobBroker, make_broker
from bastion.jobs.metrics import set_counts
from bastion.jobs.model import MAX_KIND, STATES, ItemView, JobFilter, JobView, NewJob
from bastion.jobs.registry import JobRegistry
from bastion.jobs.runner import WorkerPool
from bastion.jobs.store import JobStore
from bastion.store.db import Database

log = structlog.get_logger("bastion.jobs")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_workers(settings: Settings) -> int:
    """Jobs ``bastion serve`` runs at once per process."""
    configured = settings.jobs.inprocess_workers
    if configured is not None:
        return configured
    return 0 if settings.redis_url else 2


class JobService:
    def __init__(
        self,
        db: Database,
        settings: JobsSettings,
        redis_url: str | None,
        registry: JobRegistry | None = None,
        *,
        workers: int = 0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.registry = registry or JobRegistry()
        self.store = JobStore(db, clock)
        self.workers = workers
        self.broker: JobBroker | None = None
        self.pool: WorkerPool | None = None
        self._metrics: asyncio.Task[None] | None = None
        self._kinds_shown: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, *, workers: int | None = None) -> JobService:
        service = cls(
            db,
            settings.jobs,
            settings.redis_url,
            workers=default_workers(settings) if workers is None else workers,
        )
        return service

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.registry.load_modules(self.settings.handler_modules)
        self.broker = JobBroker(make_broker(self.settings, self.redis_url))
        try:
            await self.broker.start()
        except Exception as exc:  # Redis down: submitting retries the broker; the sweeper re-hands jobs
            log.warning("jobs_broker_start_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        if self.workers > 0:
            self.pool = WorkerPool(self.store, self.registry, self.broker, self.settings, self.workers, self.enqueue)
            await self.pool.start()
        self._metrics = asyncio.get_running_loop().create_task(self._metrics_loop(), name="jobs-metrics")

    async def stop(self) -> None:
        if self._metrics is not None:
            self._metrics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics
            self._metrics = None
        if self.pool is not None:
            await self.pool.stop()
            self.pool = None
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.stop()
            self.broker = None

    async def _metrics_loop(self) -> None:
        while True:
            try:
                await self.refresh_metrics()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not migrated yet, database down: next round
                log.debug("jobs_metrics_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.settings.metrics_interval_s)

    async def refresh_metrics(self) -> None:
        """Set the queued and running gauges from the job table."""
        self._kinds_shown = set_counts(await self.store.counts(), self._kinds_shown)

    # -- handing out -------------------------------------------------------------------------------

    async def enqueue(self, job_ids: list[str]) -> None:
        """Hand jobs to the broker. With the in-process broker only this process's workers can
        take them (none: the other processes' pollers will find them in the table)."""
        broker = self.broker
        if broker is None or not job_ids:
            return
        pool = self.pool
        if broker.local:
            if pool is None:
                return
            job_ids = [i for i in dict.fromkeys(job_ids) if i not in pool.pending and i not in pool.running]
            pool.pending.update(job_ids)
        for job_id in job_ids:
            try:
                await broker.kick(job_id)
            except Exception as exc:  # Redis down: the sweeper hands it out again later
                log.warning("job_enqueue_failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}"[:300])
                return

    # -- the API -----------------------------------------------------------------------------------

    async def submit(self, job: NewJob) -> JobView:
        """Store the job (queued) and hand it to the broker. A kind no process here knows is
        accepted: a worker elsewhere may run it."""
        if not job.kind or len(job.kind) > MAX_KIND:
            raise InvalidRequest(f"Invalid request: a job kind is 1 to {MAX_KIND} characters.", param="kind")
        kind = self.registry.get(job.kind)
        max_attempts = job.max_attempts or (kind.max_attempts if kind else None) or self.settings.max_attempts
        view = await self.store.create(job, max_attempts)
        await self.enqueue([view.id])
        return view

    async def get(self, job_id: str, tenant_id: str | None = None) -> JobView:
        return await self.store.get(job_id, tenant_id)

    async def list_jobs(
        self, where: JobFilter, limit: int, cursor: str | None = None
    ) -> tuple[list[JobView], str | None]:
        if where.state is not None and where.state not in STATES:
            raise InvalidRequest(f"Invalid request: state must be one of {', '.join(STATES)}.", param="state")
        return await self.store.list_jobs(where, limit, cursor)

    async def cancel(self, job_id: str, tenant_id: str | None = None) -> JobView:
        job = await self.store.cancel(job_id, tenant_id)
        if self.pool is not None and job_id in self.pool.running:
            log.info("job_cancel_requested", job_id=job_id)
        return job

    async def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job no worker has started; False if one has (or it is finished)."""
        return await self.store.cancel_queued(job_id)

    async def retry(self, job_id: str, tenant_id: str | None = None) -> JobView:
        job = await self.store.retry(job_id, tenant_id)
        await self.enqueue([job.id])
        return job

    async def items(self, job_id: str, limit: int = 1000, after: str | None = None) -> list[ItemView]:
        return await self.store.items(job_id, limit, after)

    async def item_counts(self, job_id: str) -> dict[str, int]:
        return await self.store.item_counts(job_id)

    def describe(self) -> dict[str, Any]:
        return {"workers": self.workers, "kinds": self.registry.kinds(), "redis": bool(self.redis_url)}
