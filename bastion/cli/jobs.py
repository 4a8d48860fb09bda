"""``bastion jobs``: list, show, cancel and retry background jobs from the terminal (the same
operations as ``/api/v1/admin/jobs``, across every tenant unless ``--tenant`` narrows it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from bastion.auth import manage
from bastion.cli.access_common import ConfigOption, DataDirOption, database, fail, load, run_reporting
from bastion.config.settings import Settings
from bastion.errors import NotFound
from bastion.jobs.model import STATES, JobFilter, job_json
from bastion.jobs.runner import job_summary
from bastion.jobs.service import JobService

T = TypeVar("T")

app = typer.Typer(help="Background jobs: list, show, cancel, retry.", no_args_is_help=True)

TenantOption = Annotated[str | None, typer.Option(help="Only this tenant's jobs (its name).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _run(settings: Settings, work: Callable[[JobService], Awaitable[T]], *, broker: bool = False) -> T:
    """Run ``work`` against the job table (and, with ``broker``, the broker, to hand jobs out)."""

    async def main() -> T:
        async with database(settings) as db:
            service = JobService.from_settings(settings, db, workers=0)
            if broker:
                await service.start()
            try:
                return await work(service)
            finally:
                await service.stop()

    return run_reporting(main)


async def _tenant_id(service: JobService, tenant: str | None) -> str | None:
    if tenant is None:
        return None
    async with service.store.db.session() as session:
        row = await manage.tenant_by_name(session, tenant)
    if row is None:
        raise NotFound(f"No tenant named {tenant!r}.")
    return row.id


def _print(job: dict[str, Any], as_json: bool, summary: str) -> None:
    typer.echo(json.dumps(job, default=str) if as_json else summary)


@app.command("list")
def list_jobs(
    state: Annotated[str | None, typer.Option(help=f"Only jobs in this state ({', '.join(STATES)}).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most jobs to print.")] = 50,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Jobs, newest first: one line each (or one JSON object per line)."""
    settings = load(config, data_dir)
    if state is not None and state not in STATES:
        raise fail(f"--state must be one of {', '.join(STATES)}")

    async def work(service: JobService) -> list[Any]:
        where = JobFilter(tenant_id=await _tenant_id(service, tenant), state=state, kind=kind)
        jobs, _ = await service.list_jobs(where, limit)
        return jobs

    for job in _run(settings, work):
        _print(job_json(job, payload=False), as_json, job_summary(job))


@app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One job in full, as JSON."""
    settings = load(config, data_dir)
    job = _run(settings, lambda service: service.get(job_id))
    typer.echo(json.dumps(job_json(job), indent=2, default=str))


@app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Cancel a job: a queued one at once; a running one is stopped by its worker within about a second."""
    settings = load(config, data_dir)
    job = _run(settings, lambda service: service.cancel(job_id))
    _print(job_json(job), as_json, job_summary(job) + (" (cancel requested)" if job.state == "running" else ""))


@app.command("retry")
def retry(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Queue a failed or cancelled job again (its attempts start over; items already done stay done)."""
    settings = load(config, data_dir)
    job = _run(settings, lambda service: service.retry(job_id), broker=bool(settings.redis_url))
    _print(job_json(job), as_json, job_summary(job))
