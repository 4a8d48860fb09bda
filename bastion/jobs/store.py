"""The job table's queries. Every state change is one conditional UPDATE, so two workers (or a
worker and the sweeper) racing for the same job cannot both win: the row is the source of truth.

Item results are inserted if absent (``ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so a
result is stored exactly once however often an item runs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.jobs.model import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    ItemOutcome,
    ItemView,
    JobFilter,
    JobView,
    NewJob,
    Sweep,
    new_job_id,
)
from bastion.store.db import Database
from bastion.store.models_jobs import Job, JobItem

#: Longest error text kept on a job.
MAX_ERROR = 2000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _view(row: Job) -> JobView:
    return JobView(
        id=row.id,
        kind=row.kind,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        user_id=row.user_id,
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        heartbeat_at=row.heartbeat_at,
        progress_done=row.progress_done,
        progress_total=row.progress_total,
        error=row.error,
        result=row.result,
        result_ref=row.result_ref,
        payload=row.payload,
        cancel_requested=row.cancel_requested,
        created_at=row.created_at,
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _error(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR]


def encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Invalid request: malformed cursor.", param="cursor") from None
    return (created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at), job_id


class JobStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = _utcnow) -> None:
        self.db = db
        #: UTC "now"; tests move it to expire leases without waiting.
        self.clock = clock

    # -- submitting and reading --------------------------------------------------------------------

    async def create(self, job: NewJob, max_attempts: int) -> JobView:
        now = self.clock()
        row = Job(
            id=job.id or new_job_id(),
            kind=job.kind,
            tenant_id=job.tenant_id,
            key_id=job.key_id,
            user_id=job.user_id,
            state=QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            progress_done=0,
            progress_total=job.progress_total,
            payload=job.payload,
            cancel_requested=False,
            created_at=now,
            enqueued_at=now,
        )
        async with self.db.transaction() as session:
            session.add(row)
        return _view(row)

    async def get(self, job_id: str, tenant_id: str | None = None) -> JobView:
        """The job; within ``tenant_id`` unless None. Another tenant's job answers like a missing one."""
        query = select(Job).where(Job.id == job_id)
        if tenant_id is not None:
            query = query.where(Job.tenant_id == tenant_id)
        async with self.db.session() as session:
            row = await session.scalar(query)
        if row is None:
            raise NotFound(f"No job {job_id!r}.", param="job_id")
        return _view(row)

    async def list_jobs(
        self, where: JobFilter, limit: int, cursor: str | None = None
    ) -> tuple[list[JobView], str | None]:
        """Newest first; the cursor of the next page, or None."""
        query = select(Job)
        if where.tenant_id is not None:
            query = query.where(Job.tenant_id == where.tenant_id)
        if where.state is not None:
            query = query.where(Job.state == where.state)
        if where.kind is not None:
            query = query.where(Job.kind == where.kind)
        if cursor:
            created_at, job_id = decode_cursor(cursor)
            query = query.where(or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id)))
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        async with self.db.session() as session:
            rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return [_view(row) for row in rows], next_cursor

    async def claimable(self, kinds: Sequence[str], limit: int = 100) -> list[str]:
        """Queued jobs of these kinds, oldest first."""
        if not kinds:
            return []
        query = (
            select(Job.id)
            .where(Job.state == QUEUED, Job.kind.in_(list(kinds)), Job.cancel_requested.is_(False))
            .order_by(Job.created_at, Job.id)
            .limit(limit)
        )
        async with self.db.session() as session:
            return list((await session.scalars(query)).all())

    async def counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> jobs, for the queued and running gauges."""
        query = (
            select(Job.kind, Job.state, func.count())
            .where(Job.state.in_([QUEUED, RUNNING]))
            .group_by(Job.kind, Job.state)
        )
        async with self.db.session() as session:
            return {(kind, state): int(count) for kind, state, count in (await session.execute(query)).all()}

    # -- a worker's side ---------------------------------------------------------------------------

    async def claim(self, job_id: str, owner: str, lease_s: float, kinds: Sequence[str]) -> JobView | None:
        """queued -> running for ``owner`` with a lease; None when someone else got it first, it is
        not queued any more, or its kind is not one this worker runs."""
        now = self.clock()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.state == QUEUED,
                    Job.cancel_requested.is_(False),
                    Job.kind.in_(list(kinds)),
                )
                .values(
                    state=RUNNING,
                    attempts=Job.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    heartbeat_at=now,
                    started_at=func.coalesce(Job.started_at, now),
                    finished_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                return None
            row = await session.scalar(select(Job).where(Job.id == job_id))
        return _view(row) if row is not None else None

    def _held(self, job_id: str, owner: str) -> ColumnElement[bool]:
        return and_(Job.id == job_id, Job.state == RUNNING, Job.lease_owner == owner)

    async def heartbeat(
        self, job_id: str, owner: str, lease_s: float, done: int | None = None, total: int | None = None
    ) -> bool:
        """Renew the lease (and record progress); False: the job is no longer this worker's."""
        now = self.clock()
        values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "heartbeat_at": now}
        values.update(_progress(done, total))
        return await self._update_held(job_id, owner, values)

    async def watch(self, job_id: str, owner: str) -> tuple[bool, bool]:
        """(still this worker's, cancel requested)."""
        async with self.db.session() as session:
            row = (
                await session.execute(select(Job.state, Job.lease_owner, Job.cancel_requested).where(Job.id == job_id))
            ).first()
        if row is None:
            return False, True
        state, lease_owner, cancel = row
        return state == RUNNING and lease_owner == owner, bool(cancel)

    async def finish(
        self,
        job_id: str,
        owner: str,
        state: str,
        *,
        result: Any = None,
        result_ref: str | None = None,
        error: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> bool:
        """running -> succeeded | failed | cancelled, if this worker still holds the job."""
        values: dict[str, Any] = {
            "state": state,
            "finished_at": self.clock(),
            "lease_owner": None,
            "lease_expires_at": None,
            "error": _error(error),
        }
        if state == SUCCEEDED:
            values["result"] = result
            values["result_ref"] = result_ref
        values.update(_progress(done, total))
        return await self._update_held(job_id, owner, values)

    async def release(
        self, job_id: str, owner: str, *, error: str | None, count_attempt: bool = True, done: int | None = None
    ) -> bool:
        """running -> queued (a failed attempt with attempts left, or a worker shutting down,
        which gives the attempt back)."""
        values: dict[str, Any] = {
            "state": QUEUED,
            "lease_owner": None,
            "lease_expires_at": None,
            "enqueued_at": self.clock(),
            "error": _error(error),
        }
        if not count_attempt:
            values["attempts"] = Job.attempts - 1
        values.update(_progress(done, None))
        return await self._update_held(job_id, owner, values)

    async def _update_held(self, job_id: str, owner: str, values: dict[str, Any]) -> bool:
        """Apply ``values`` if this worker still holds the job (running, its lease); False otherwise."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Job)
                .where(self._held(job_id, owner))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return _rowcount(result) == 1

    # -- the sweeper -------------------------------------------------------------------------------

    async def sweep(self) -> Sweep:
        """Running jobs whose lease expired (their worker died or hangs): cancelled if that was asked,
        failed when out of attempts, queued again otherwise."""
        now = self.clock()
        expired = and_(Job.state == RUNNING, Job.lease_expires_at < now)
        gone = {"lease_owner": None, "lease_expires_at": None}
        outcome = Sweep()
        async with self.db.transaction() as session:
            cancelled = await session.execute(
                update(Job)
                .where(expired, Job.cancel_requested.is_(True))
                .values(state=CANCELLED, finished_at=now, **gone)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
            outcome.cancelled = len(cancelled.all())
            failed = await session.execute(
                update(Job)
                .where(expired, Job.attempts >= Job.max_attempts)
                .values(
                    state=FAILED,
                    finished_at=now,
                    error="The job's worker stopped answering (lease expired) on its last attempt.",
                    **gone,
                )
                .returning(Job.kind)
                .execution_options(synchronize_session=False)
            )
            outcome.failed_kinds = [kind for (kind,) in failed.all()]
            requeued = await session.execute(
                update(Job)
                .where(expired)
                .values(
                    state=QUEUED,
                    enqueued_at=now,
                    error="The job's worker stopped answering (lease expired); queued again.",
                    **gone,
                )
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
            outcome.requeued = [job_id for (job_id,) in requeued.all()]
        return outcome

    async def unclaimed(self, older_than_s: float, kinds: Sequence[str], limit: int = 500) -> list[str]:
        """Queued jobs handed to the broker more than ``older_than_s`` ago and never claimed (a lost
        message, or no worker knew the kind); stamped as handed out now."""
        if not kinds:
            return []
        now = self.clock()
        stale = and_(
            Job.state == QUEUED,
            Job.kind.in_(list(kinds)),
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < now - timedelta(seconds=older_than_s)),
        )
        async with self.db.transaction() as session:
            ids = list((await session.scalars(select(Job.id).where(stale).order_by(Job.created_at).limit(limit))).all())
            if not ids:
                return []
            result = await session.execute(
                update(Job)
                .where(stale, Job.id.in_(ids))
                .values(enqueued_at=now)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
            return [job_id for (job_id,) in result.all()]

    # -- operators ---------------------------------------------------------------------------------

    async def cancel(self, job_id: str, tenant_id: str | None = None) -> JobView:
        """queued -> cancelled at once; running -> cancel requested (its worker stops it). 409 when finished."""
        job = await self.get(job_id, tenant_id)
        now = self.clock()
        async with self.db.transaction() as session:
            done = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(state=CANCELLED, cancel_requested=True, finished_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(done) == 0:
                await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == RUNNING)
                    .values(cancel_requested=True)
                    .execution_options(synchronize_session=False)
                )
        job = await self.get(job_id, tenant_id)
        if job.state not in (CANCELLED, RUNNING):
            raise Conflict(f"Job {job_id} has already {job.state}; there is nothing to cancel.")
        return job

    async def cancel_queued(self, job_id: str) -> bool:
        """queued -> cancelled, only if no worker has it: True if this call cancelled it."""
        async with self.db.transaction() as session:
            done = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(state=CANCELLED, cancel_requested=True, finished_at=self.clock())
                .execution_options(synchronize_session=False)
            )
        return _rowcount(done) == 1

    async def retry(self, job_id: str, tenant_id: str | None = None) -> JobView:
        """failed | cancelled -> queued, with its attempts reset; items already done stay done."""
        await self.get(job_id, tenant_id)
        now = self.clock()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_([FAILED, CANCELLED]))
                .values(
                    state=QUEUED,
                    attempts=0,
                    cancel_requested=False,
                    error=None,
                    finished_at=None,
                    enqueued_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        job = await self.get(job_id, tenant_id)
        if _rowcount(result) != 1:
            raise Conflict(f"Job {job_id} is {job.state}: only a failed or cancelled job can be retried.")
        return job

    # -- items -------------------------------------------------------------------------------------

    async def done_items(self, job_id: str) -> set[str]:
        async with self.db.session() as session:
            return set((await session.scalars(select(JobItem.item_key).where(JobItem.job_id == job_id))).all())

    async def item_done(self, job_id: str, key: str) -> bool:
        async with self.db.session() as session:
            found = await session.scalar(
                select(JobItem.item_key).where(JobItem.job_id == job_id, JobItem.item_key == key)
            )
        return found is not None

    async def write_items(self, job_id: str, items: Sequence[ItemOutcome]) -> int:
        """Insert each item's outcome unless one is stored already; how many this call stored."""
        if not items:
            return 0
        now = self.clock()
        rows = [
            {
                "job_id": job_id,
                "item_key": item.key,
                "status": item.status,
                "result": item.result,
                "error": item.error,
                "created_at": now,
            }
            for item in items
        ]
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(JobItem).values(rows).on_conflict_do_nothing(index_elements=["job_id", "item_key"])
        async with self.db.transaction() as session:
            result = await session.execute(statement)
        return _rowcount(result)

    async def item_counts(self, job_id: str) -> dict[str, int]:
        """Stored items by status (``succeeded``, ``failed``)."""
        query = select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)
        async with self.db.session() as session:
            return {status: int(count) for status, count in (await session.execute(query)).all()}

    async def items(self, job_id: str, limit: int = 1000, after: str | None = None) -> list[ItemView]:
        query = select(JobItem).where(JobItem.job_id == job_id)
        if after is not None:
            query = query.where(JobItem.item_key > after)
        query = query.order_by(JobItem.item_key).limit(limit)
        async with self.db.session() as session:
            rows = (await session.scalars(query)).all()
        return [ItemView(r.item_key, r.status, r.result, r.error, r.created_at) for r in rows]


def _progress(done: int | None, total: int | None) -> dict[str, int]:
    """The progress columns to set: only those given."""
    values: dict[str, int] = {}
    if done is not None:
        values["progress_done"] = done
    if total is not None:
        values["progress_total"] = total
    return values
