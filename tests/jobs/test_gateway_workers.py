"""The gateway's own workers: on the embedded default a gateway runs jobs in process (kinds from
``jobs.handler_modules`` included); ``jobs.inprocess_workers: 0`` leaves them to ``bastion worker``."""

from __future__ import annotations

from pathlib import Path

from bastion.jobs.model import QUEUED, SUCCEEDED, JobView, NewJob
from bastion.jobs.service import default_workers
from bastion.store.db import Database
from tests.jobs.crash_handlers import ECHO
from tests.support.harness import make_settings, running_gateway, wait_until

MODULES = {"handler_modules": ["tests.jobs.crash_handlers"], "poll_interval_s": 0.1}


async def test_a_gateway_on_the_embedded_default_runs_jobs_in_process(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, jobs=MODULES)
    assert default_workers(settings) == 2
    async with running_gateway(settings) as env:
        jobs = env.gateway.services.jobs
        assert jobs.pool is not None and ECHO in jobs.registry
        job = await jobs.submit(NewJob(ECHO, payload=[1, 2]))

        async def done() -> JobView | None:
            current = await jobs.get(job.id)
            return current if current.finished else None

        finished = await wait_until(done, what="the job ran")
        assert finished.state == SUCCEEDED and finished.result == {"echo": [1, 2]}


async def test_inprocess_workers_can_be_switched_off(database: Database, database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, jobs={**MODULES, "inprocess_workers": 0}, auth={"enabled": False})
    assert make_settings(database_url, tmp_path, redis_url="redis://127.0.0.1:1/0").jobs.inprocess_workers is None
    assert default_workers(make_settings(database_url, tmp_path, redis_url="redis://127.0.0.1:1/0")) == 0
    async with running_gateway(settings) as env:
        jobs = env.gateway.services.jobs
        assert jobs.pool is None
        job = await jobs.submit(NewJob(ECHO))
        assert (await jobs.get(job.id)).state == QUEUED  # waits for a worker process
        await jobs.refresh_metrics()
        metrics = (await env.client.get("/metrics")).text
        assert f'bastion_jobs_queued{{kind="{ECHO}"}} 1.0' in metrics
        assert f'bastion_jobs_running{{kind="{ECHO}"}} 0.0' in metrics
        assert "# TYPE bastion_job_duration_seconds histogram" in metrics
        assert "# TYPE bastion_job_failures_total counter" in metrics
