"""Red-team runs in the database: create, read (always within a tenant), list newest first, and
record the outcome. Another tenant's run is not found, as if it did not exist."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from bastion.errors import NotFound
from bastion.redteam.models import RedteamRun
from bastion.store.db import Database
from bastion.store.models import new_id, utcnow

#: States after which a run changes no more.
FINISHED = frozenset({"succeeded", "failed", "cancelled", "imported"})


@dataclass(frozen=True, slots=True)
class NewRun:
    tenant_id: str
    target: str
    spec: dict[str, Any]
    guard: bool = False
    seed: int = 0
    prompt_id: str | None = None
    source: str = "bastion"
    status: str = "queued"
    owner_method: str = "api_key"
    key_id: str | None = None
    user_id: str | None = None
    summary: dict[str, Any] | None = None
    report: dict[str, Any] | None = None


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, run: NewRun, *, run_id: str | None = None) -> RedteamRun:
        row = RedteamRun(
            id=run_id or new_id(),
            tenant_id=run.tenant_id,
            source=run.source,
            status=run.status,
            target=run.target,
            prompt_id=run.prompt_id,
            guard=run.guard,
            seed=run.seed,
            spec=run.spec,
            summary=run.summary,
            report=run.report,
            owner_method=run.owner_method,
            key_id=run.key_id,
            user_id=run.user_id,
            created_at=utcnow(),
            finished_at=utcnow() if run.status in FINISHED else None,
        )
        async with self.db.transaction() as session:
            session.add(row)
        return row

    async def attach_job(self, run_id: str, job_id: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(RedteamRun).where(RedteamRun.id == run_id).values(job_id=job_id))

    async def get(self, tenant_id: str, run_id: str) -> RedteamRun:
        async with self.db.session() as session:
            row = await session.get(RedteamRun, run_id) if len(run_id) <= 32 else None
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"No red-team run {run_id[:64]!r}.")
        return row

    async def get_any(self, run_id: str) -> RedteamRun | None:
        """A run by id whatever its tenant (the job that executes it already knows the tenant)."""
        async with self.db.session() as session:
            return await session.get(RedteamRun, run_id)

    async def list(self, tenant_id: str, limit: int, after: str | None = None) -> list[RedteamRun]:
        """Newest first; ``after``: the last id of the previous page."""
        query = select(RedteamRun).where(RedteamRun.tenant_id == tenant_id)
        if after is not None:
            cursor = await self.get(tenant_id, after)
            query = query.where(
                or_(
                    RedteamRun.created_at < cursor.created_at,
                    and_(RedteamRun.created_at == cursor.created_at, RedteamRun.id < cursor.id),
                )
            )
        query = query.order_by(RedteamRun.created_at.desc(), RedteamRun.id.desc()).limit(limit)
        async with self.db.session() as session:
            return list((await session.scalars(query)).all())

    async def finished_like(
        self, tenant_id: str, target: str, prompt_id: str | None, seed: int, guard: bool
    ) -> Sequence[RedteamRun]:
        """The tenant's succeeded runs (ours, not imported) of this model, prompt, seed and guard,
        newest first (the caller compares their selections)."""
        query = select(RedteamRun).where(
            RedteamRun.tenant_id == tenant_id,
            RedteamRun.source == "bastion",
            RedteamRun.status == "succeeded",
            RedteamRun.target == target,
            RedteamRun.seed == seed,
            RedteamRun.guard == guard,
            RedteamRun.prompt_id.is_(None) if prompt_id is None else RedteamRun.prompt_id == prompt_id,
        )
        query = query.order_by(RedteamRun.created_at.desc(), RedteamRun.id.desc()).limit(50)
        async with self.db.session() as session:
            return (await session.scalars(query)).all()

    async def set_status(self, run_id: str, status: str) -> None:
        """A live status (``running``); a finished run keeps its own."""
        async with self.db.transaction() as session:
            await session.execute(
                update(RedteamRun)
                .where(RedteamRun.id == run_id, RedteamRun.status.not_in(FINISHED))
                .values(status=status)
            )

    async def finish(
        self,
        run_id: str,
        status: str,
        *,
        summary: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": at or utcnow()}
        if summary is not None:
            values["summary"] = summary
        if report is not None:
            values["report"] = report
        async with self.db.transaction() as session:
            await session.execute(update(RedteamRun).where(RedteamRun.id == run_id).values(**values))
