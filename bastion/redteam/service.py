"""Red-team runs for the HTTP API and the CLI: submit (a row and a ``redteam_run`` job), read with
the job's live state and progress, list, cancel, and import garak reports as runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.auth.principal import Identity
from bastion.errors import Conflict, InvalidRequest
from bastion.jobs.service import JobService
from bastion.redteam.garak import GarakImport
from bastion.redteam.models import RedteamRun
from bastion.redteam.run_job import planned_attempts, submit_run
from bastion.redteam.schema import Attack, load_library
from bastion.redteam.spec import RunSpec
from bastion.redteam.store import FINISHED, NewRun, RunStore
from bastion.store.db import Database


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with its live status and progress (the job's, while it runs)."""

    run: RedteamRun
    status: str
    done: int
    total: int | None
    error: str | None = None

    def to_json(self, *, summary: bool = True) -> dict[str, Any]:
        run = self.run
        out: dict[str, Any] = {
            "object": "redteam.run",
            "id": run.id,
            "source": run.source,
            "status": self.status,
            "model": run.target,
            "prompt": run.prompt_id,
            "guard": run.guard,
            "seed": run.seed,
            "spec": run.spec,
            "job_id": run.job_id,
            "progress": {"done": self.done, "total": self.total},
            "error": self.error,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        }
        if summary:
            out["summary"] = run.summary
        return out


class RedteamService:
    def __init__(self, db: Database, jobs: JobService, library: list[Attack] | None = None) -> None:
        self.store = RunStore(db)
        self.jobs = jobs
        self._library = library

    @property
    def library(self) -> list[Attack]:
        """The attack library, read from the package's YAML on first use."""
        if self._library is None:
            self._library = load_library()
        return self._library

    async def submit(self, owner: Identity, spec: RunSpec) -> RunView:
        try:
            attempts = planned_attempts(self.library, spec)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid request: {exc}.", param="attack_ids") from None
        if attempts == 0:
            raise InvalidRequest("Invalid request: the selection matches no attack.", param="categories")
        run = await self.store.create(
            NewRun(
                owner.tenant_id,
                spec.model,
                spec.to_json(),
                guard=spec.guard,
                seed=spec.seed,
                prompt_id=spec.prompt,
                owner_method=owner.method,
                key_id=owner.key_id,
                user_id=owner.user_id,
            )
        )
        job_id = await submit_run(self.jobs, run, attempts)
        await self.store.attach_job(run.id, job_id)
        run.job_id = job_id
        return RunView(run, "queued", 0, attempts)

    async def view(self, tenant_id: str, run_id: str) -> RunView:
        return await self._view(await self.store.get(tenant_id, run_id))

    async def list(self, tenant_id: str, limit: int, after: str | None = None) -> list[RunView]:
        return [await self._view(row) for row in await self.store.list(tenant_id, limit, after)]

    async def _view(self, run: RedteamRun) -> RunView:
        attempts = len((run.report or {}).get("attempts", []))
        if run.status in FINISHED or run.job_id is None:
            return RunView(run, run.status, attempts, attempts or None)
        job = await self.jobs.get(run.job_id)
        if job.state in ("succeeded", "failed", "cancelled"):
            # The row read before the job: the handler may have recorded the outcome since.
            fresh = await self.store.get_any(run.id)
            if fresh is not None and fresh.status in FINISHED:
                return await self._view(fresh)
            # The job ended without the handler recording it (cancelled, failed): recorded now.
            final = "failed" if job.state == "succeeded" else job.state
            await self.store.finish(run.id, final, at=job.finished_at)
            refreshed = await self.store.get(run.tenant_id, run.id)
            return RunView(refreshed, final, job.progress_done, job.progress_total, job.error)
        status = "running" if job.state == "running" or run.status == "running" else job.state
        return RunView(run, status, job.progress_done, job.progress_total, job.error)

    async def cancel(self, tenant_id: str, run_id: str) -> RunView:
        run = await self.store.get(tenant_id, run_id)
        if run.status in FINISHED or run.job_id is None:
            raise Conflict(f"The red-team run {run_id!r} has finished ({run.status}).")
        await self.jobs.cancel(run.job_id, tenant_id)
        return await self.view(tenant_id, run_id)

    async def report(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        view = await self.view(tenant_id, run_id)
        if view.run.report is None:
            raise Conflict(f"The red-team run {run_id!r} has no report ({view.status}).")
        return view.run.report

    async def import_garak(self, owner: Identity, imported: GarakImport) -> RunView:
        run = await self.store.create(
            NewRun(
                owner.tenant_id,
                imported.target,
                {"source_file": imported.run_id, "garak_version": imported.garak_version},
                guard=False,
                source="garak",
                status="imported",
                owner_method=owner.method,
                key_id=owner.key_id,
                user_id=owner.user_id,
                summary=imported.summary,
                report=imported.report,
            )
        )
        return await self._view(run)
