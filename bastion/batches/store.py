"""The database side of batches: rows in, views out, and status changes as conditional UPDATEs
(a change applies only from the statuses it names, so a cancel and a worker never race)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from bastion.auth.principal import Identity
from bastion.batches.model import BatchApi, BatchView, RequestCounts
from bastion.batches.models import Batch
from bastion.errors import NotFound
from bastion.files.service import Owner
from bastion.store.db import Database


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _view(row: Batch) -> BatchView:
    api: BatchApi = "anthropic" if row.api == "anthropic" else "openai"
    return BatchView(
        id=row.id,
        api=api,
        tenant_id=row.tenant_id,
        owner=Identity(row.tenant_id, row.owner_method, row.key_id, row.user_id),
        owner_kind=row.owner_kind,
        owner_id=row.owner_id,
        job_id=row.job_id,
        endpoint=row.endpoint,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        metadata=row.batch_metadata,
        status=row.status,
        errors=row.errors,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        results_file_id=row.results_file_id,
        counts=RequestCounts(row.request_total, row.request_completed, row.request_failed, row.request_unfinished),
        error_text=row.error_text,
        created_at=row.created_at,
        expires_at=row.expires_at,
        in_progress_at=row.in_progress_at,
        finalizing_at=row.finalizing_at,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
        expired_at=row.expired_at,
        cancelling_at=row.cancelling_at,
        cancelled_at=row.cancelled_at,
    )


def _visible(owner: Owner, api: BatchApi) -> ColumnElement[bool]:
    condition = and_(Batch.tenant_id == owner.tenant_id, Batch.api == api)
    if not owner.sees_tenant:
        condition = and_(condition, Batch.owner_kind == owner.kind, Batch.owner_id == owner.id)
    return condition


class BatchStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = _utcnow) -> None:
        self.db = db
        self.clock = clock

    async def add(self, row: Batch) -> BatchView:
        async with self.db.transaction() as session:
            session.add(row)
        return _view(row)

    async def load(self, batch_id: str) -> BatchView | None:
        """Any batch by id (the worker's read: no owner check)."""
        async with self.db.session() as session:
            row = await session.get(Batch, batch_id)
        return _view(row) if row is not None else None

    async def get(self, owner: Owner, api: BatchApi, batch_id: str) -> BatchView:
        """A batch the owner may see; 404 alike for another tenant's or owner's and an unknown id."""
        async with self.db.session() as session:
            row = await session.scalar(select(Batch).where(Batch.id == batch_id, _visible(owner, api)))
        if row is None:
            raise NotFound(f"No such batch: {batch_id[:80]}", param="batch_id")
        return _view(row)

    async def page(
        self, owner: Owner, api: BatchApi, limit: int, *, after: str | None = None, before: str | None = None
    ) -> tuple[list[BatchView], bool]:
        """Newest first; ``after``: older than that batch, ``before``: newer (its page, still
        newest first). Returns the page and whether more lie beyond it."""
        condition = _visible(owner, api)
        newer = before is not None
        cursor_id = before if newer else after
        if cursor_id is not None:
            cursor = await self.get(owner, api, cursor_id)
            at = cursor.created_at
            if newer:
                condition = and_(
                    condition, or_(Batch.created_at > at, and_(Batch.created_at == at, Batch.id > cursor_id))
                )
            else:
                condition = and_(
                    condition, or_(Batch.created_at < at, and_(Batch.created_at == at, Batch.id < cursor_id))
                )
        ordering = (Batch.created_at.asc(), Batch.id.asc()) if newer else (Batch.created_at.desc(), Batch.id.desc())
        async with self.db.session() as session:
            rows = [*await session.scalars(select(Batch).where(condition).order_by(*ordering).limit(limit + 1))]
        more = len(rows) > limit
        views = [_view(row) for row in rows[:limit]]
        if newer:
            views.reverse()
        return views, more

    async def move(self, batch_id: str, from_statuses: Collection[str], **values: Any) -> bool:
        """Apply ``values`` if the batch is in one of ``from_statuses``; True if it was."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status.in_(list(from_statuses)))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, batch_id: str) -> None:
        async with self.db.transaction() as session:
            row = await session.get(Batch, batch_id)
            if row is not None:
                await session.delete(row)
