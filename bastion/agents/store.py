"""The database side of agent runs: rows in, views out, status changes as conditional UPDATEs (a
change applies only from the statuses it names, so a cancel and a worker never race)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from bastion.agents.models import AgentRun
from bastion.agents.orchestrator import RunResult
from bastion.agents.trace import event_dict, record_chain
from bastion.auth.principal import Identity
from bastion.errors import NotFound
from bastion.store.db import Database

QUEUED = "queued"
RUNNING = "running"
#: The statuses a run ends in (the orchestrator's, and ``failed`` for a job that gave up).
FINAL = frozenset({"succeeded", "budget_exhausted", "blocked", "failed", "cancelled"})


def new_run_id() -> str:
    return "run_" + secrets.token_hex(16)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunView:
    id: str
    tenant_id: str
    owner: Identity
    job_id: str | None
    template: str | None
    planner: str
    task: str | None
    plan: dict[str, Any]
    planner_reason: str | None
    input: dict[str, Any]
    budget: dict[str, Any]
    grants: dict[str, Any]
    seed: int | None
    status: str
    reason: str | None
    outputs: dict[str, Any] | None
    output: dict[str, Any] | None
    spent: dict[str, Any] | None
    iterations: int
    trace: list[dict[str, Any]]
    links: list[str]
    trace_hash: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL


def _view(row: AgentRun) -> RunView:
    return RunView(
        id=row.id,
        tenant_id=row.tenant_id,
        owner=Identity(row.tenant_id, row.owner_method, row.key_id, row.user_id),
        job_id=row.job_id,
        template=row.template,
        planner=row.planner,
        task=row.task,
        plan=row.plan,
        planner_reason=row.planner_reason,
        input=row.input,
        budget=row.budget,
        grants=row.grants,
        seed=row.seed,
        status=row.status,
        reason=row.reason,
        outputs=row.outputs,
        output=row.output,
        spent=row.spent,
        iterations=row.iterations,
        trace=list(row.trace or []),
        links=list(row.links or []),
        trace_hash=row.trace_hash,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True, slots=True)
class NewRun:
    owner: Identity
    template: str | None
    planner: str
    plan: dict[str, Any]
    input: dict[str, Any]
    budget: dict[str, Any]
    grants: dict[str, Any]
    seed: int | None = None
    task: str | None = None


class AgentRunStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = _utcnow) -> None:
        self.db = db
        self.clock = clock

    async def add(self, new: NewRun) -> RunView:
        row = AgentRun(
            id=new_run_id(),
            tenant_id=new.owner.tenant_id,
            owner_method=new.owner.method,
            key_id=new.owner.key_id,
            user_id=new.owner.user_id,
            template=new.template,
            planner=new.planner,
            task=new.task,
            plan=new.plan,
            input=new.input,
            budget=new.budget,
            grants=new.grants,
            seed=new.seed,
            status=QUEUED,
            iterations=0,
            trace=[],
            links=[],
            created_at=self.clock(),
        )
        async with self.db.transaction() as session:
            session.add(row)
        return _view(row)

    async def set_job(self, run_id: str, job_id: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(AgentRun).where(AgentRun.id == run_id).values(job_id=job_id))

    async def load(self, run_id: str) -> RunView | None:
        """Any run by id (the worker's read: no tenant check)."""
        async with self.db.session() as session:
            row = await session.get(AgentRun, run_id)
        return _view(row) if row is not None else None

    async def get(self, tenant_id: str, run_id: str) -> RunView:
        """The tenant's run; another tenant's, or none, is a 404."""
        view = await self.load(run_id) if "\x00" not in run_id else None
        if view is None or view.tenant_id != tenant_id:
            raise NotFound(f"No agent run {run_id[:80]!r}.")
        return view

    async def list_runs(self, tenant_id: str, limit: int = 50) -> list[RunView]:
        query = (
            select(AgentRun)
            .where(AgentRun.tenant_id == tenant_id)
            .order_by(AgentRun.created_at.desc(), AgentRun.id.desc())
            .limit(limit)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_view(row) for row in rows]

    async def start(self, run_id: str) -> bool:
        """Running, with an empty trace (an attempt after a crash starts the run over); False if
        the run already ended (cancelled while queued)."""
        values: dict[str, Any] = {"status": RUNNING, "started_at": self.clock(), "trace": [], "links": []}
        return await self._update(run_id, (QUEUED, RUNNING), values)

    async def set_plan(self, run_id: str, plan: dict[str, Any], data: dict[str, Any], reason: str) -> bool:
        """The plan a planner mode chose for the run's task, the input it runs on, and why."""
        values = {"plan": plan, "input": data, "planner_reason": reason[:2000]}
        return await self._update(run_id, (RUNNING,), values)

    async def progress(self, run_id: str, trace: list[dict[str, Any]], links: list[str]) -> bool:
        return await self._update(run_id, (RUNNING,), {"trace": trace, "links": links})

    async def finish(self, run_id: str, result: RunResult) -> bool:
        records = [event_dict(event) for event in result.trace]
        values = {
            "status": result.status.value,
            "reason": result.reason,
            "outputs": result.outputs,
            "output": result.output,
            "spent": _usage(result.spent),
            "iterations": result.iterations,
            "trace": records,
            "links": record_chain(records),
            "trace_hash": result.trace_hash,
            "finished_at": self.clock(),
        }
        return await self._update(run_id, (QUEUED, RUNNING), values)

    async def end(self, run_id: str, status: str, reason: str) -> bool:
        """Ended without a result of the orchestrator's (cancelled while queued, the job failed)."""
        return await self._update(
            run_id, (QUEUED, RUNNING), {"status": status, "reason": reason[:2000], "finished_at": self.clock()}
        )

    async def _update(self, run_id: str, statuses: tuple[str, ...], values: dict[str, Any]) -> bool:
        statement = update(AgentRun).where(AgentRun.id == run_id, AgentRun.status.in_(statuses)).values(**values)
        async with self.db.transaction() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))


def _usage(usage: Any) -> dict[str, Any]:
    return {"tokens": usage.tokens, "cost_usd": round(usage.cost_usd, 9), "tool_calls": usage.tool_calls}
