"""The review queue: prepare batches from the ledger, hand items to reviewers under leases, take
their reviews, and report progress and agreement. Every call is scoped to the principal's tenant
(another tenant's batch or item answers 404, like one that does not exist) and audited.

Locking: an item has ``reviewers_per_item`` slots. A claim takes the lowest free slot of the first
item the reviewer has not seen, by inserting an assignment row; ``(item_id, slot)`` and
``(item_id, reviewer)`` are unique, so two concurrent claims can never hold the same slot and a
reviewer never gets an item twice, on SQLite and PostgreSQL alike. A lease that ran out is taken
over by a conditional update (only one claimer wins it), which keeps the old row, without its slot,
as the record that its reviewer saw the item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.auth.principal import Permission, Principal, Role, require
from bastion.config.work_settings import ReviewSettings
from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.ledger.record import content_mode
from bastion.review.audit import audit
from bastion.review.candidates import pair_candidates, single_candidates
from bastion.review.model import (
    PAIRWISE,
    SYSTEM_METHOD,
    PrepareSpec,
    ReviewInput,
    actor_of,
    reviewer_of,
)
from bastion.review.models import Review, ReviewAssignment, ReviewBatch, ReviewItem
from bastion.review.outcomes import agreement_report
from bastion.review.views import assignment_json, batch_json, content_view, item_json, review_json
from bastion.store.db import Database
from bastion.store.models import Interaction, Tenant
from bastion.store.periodic import PeriodicSweep

log = structlog.get_logger("bastion.review")

LEASED, DONE, EXPIRED = "leased", "done", "expired"
#: Items looked at per claim attempt.
_CLAIM_WINDOW = 50
_CLAIM_ROUNDS = 5
#: Prepares lost to a concurrent prepare of the same purpose (each retry selects afresh).
_PREPARE_ATTEMPTS = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReviewService:
    def __init__(
        self,
        db: Database,
        settings: ReviewSettings,
        *,
        ledger_default_mode: str = "full",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.ledger_default_mode = ledger_default_mode
        #: UTC "now"; tests move it to expire leases without sleeping.
        self.clock = clock
        interval = settings.flagged_interval_s or 86_400.0
        self._flagged = PeriodicSweep("review_flagged", lambda: interval, self.queue_flagged, "bastion.review")

    # -- lifecycle: the flagged-interactions task ----------------------------------------------------

    async def start(self) -> None:
        if self.settings.flagged_interval_s is not None:
            self._flagged.start()

    async def stop(self) -> None:
        await self._flagged.stop()

    async def queue_flagged(self) -> int:
        """Seed 000's "review flagged interactions" task: for every tenant, a batch (purpose
        ``flagged``) of the flagged interactions not queued for that purpose yet; how many were
        queued. Several processes may run it: an interaction is still queued once."""
        async with self.db.session() as session:
            tenants = (
                await session.execute(select(Tenant.id, Tenant.name, Tenant.settings).where(~Tenant.disabled))
            ).all()
        queued = 0
        for tenant in tenants:
            principal = Principal(
                tenant_id=tenant.id, tenant_name=tenant.name, role=Role.ADMIN, method=SYSTEM_METHOD,
                user_email="system:review-flagged", tenant_settings=dict(tenant.settings or {}),
            )  # fmt: skip
            spec = PrepareSpec.parse(
                {"purpose": "flagged", "name": f"flagged {self.clock():%Y-%m-%d %H:%M}", "filter": {"flagged": True}},
                reviewers_per_item=self.settings.reviewers_per_item,
                lease_s=self.settings.lease_s,
            )
            ids = await single_candidates(self.db, tenant.id, spec.purpose, spec.filter)
            if not ids:
                continue
            try:
                await self._store_batch(principal, spec, [(i, None) for i in ids])
            except IntegrityError:  # another process queued them meanwhile
                continue
            queued += len(ids)
        return queued

    # -- batches -----------------------------------------------------------------------------------

    async def prepare(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Queue the interactions ``body``'s filter selects (seed 000's ``finetune/prepare``)."""
        require(principal, Permission.MANAGE_DATASETS)
        spec = PrepareSpec.parse(
            body, reviewers_per_item=self.settings.reviewers_per_item, lease_s=self.settings.lease_s
        )
        for attempt in range(_PREPARE_ATTEMPTS):
            pairs: list[tuple[str, str | None]]
            if spec.kind == PAIRWISE:
                pairs = [*await pair_candidates(self.db, principal.tenant_id, spec.purpose, spec.filter)]
            else:
                pairs = [
                    (i, None) for i in await single_candidates(self.db, principal.tenant_id, spec.purpose, spec.filter)
                ]
            try:
                return await self._store_batch(principal, spec, pairs)
            except IntegrityError:  # another prepare queued some of them for the purpose meanwhile
                if attempt == _PREPARE_ATTEMPTS - 1:
                    raise Conflict("Another prepare for this purpose is running; try again.") from None
        raise AssertionError("unreachable")

    async def _store_batch(
        self, principal: Principal, spec: PrepareSpec, pairs: Sequence[tuple[str, str | None]]
    ) -> dict[str, Any]:
        now = self.clock()
        async with self.db.transaction() as session:
            batch = ReviewBatch(
                tenant_id=principal.tenant_id,
                name=spec.name,
                purpose=spec.purpose,
                kind=spec.kind,
                filter=spec.filter.to_json(),
                reviewers_per_item=spec.reviewers_per_item,
                lease_s=spec.lease_s,
                item_count=len(pairs),
                created_by=actor_of(principal),
                created_at=now,
            )
            session.add(batch)
            await session.flush()
            session.add_all(
                ReviewItem(
                    tenant_id=principal.tenant_id,
                    batch_id=batch.id,
                    position=position,
                    purpose=spec.purpose,
                    interaction_id=a,
                    pair_interaction_id=b,
                    created_at=now,
                )
                for position, (a, b) in enumerate(pairs)
            )
            audit(
                session, principal, "review.prepare", f"review_batch:{batch.id}", items=len(pairs), purpose=spec.purpose
            )
        log.info("review_batch_prepared", batch_id=batch.id, tenant_id=principal.tenant_id, items=len(pairs))
        return batch_json(batch, await self._counts(batch))

    async def list_batches(self, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
        require(principal, Permission.REVIEW)
        async with self.db.session() as session:
            rows = await session.scalars(
                select(ReviewBatch)
                .where(ReviewBatch.tenant_id == principal.tenant_id)
                .order_by(ReviewBatch.created_at.desc(), ReviewBatch.id.desc())
                .limit(max(1, min(limit, 500)))
            )
            return [batch_json(batch) for batch in rows]

    async def get_batch(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        require(principal, Permission.REVIEW)
        async with self.db.session() as session:
            batch = await self._batch(session, principal, batch_id)
        return batch_json(batch, await self._counts(batch))

    async def _batch(self, session: AsyncSession, principal: Principal, batch_id: str) -> ReviewBatch:
        batch = await session.scalar(
            select(ReviewBatch).where(ReviewBatch.id == batch_id[:32], ReviewBatch.tenant_id == principal.tenant_id)
        )
        if batch is None:
            raise NotFound(f"No review batch {batch_id[:64]!r} in this tenant.")
        return batch

    async def _counts(self, batch: ReviewBatch) -> dict[str, int]:
        now = self.clock()
        async with self.db.session() as session:
            reviews = await session.scalar(select(func.count()).select_from(Review).where(Review.batch_id == batch.id))
            leased = await session.scalar(
                select(func.count())
                .select_from(ReviewAssignment)
                .where(
                    ReviewAssignment.batch_id == batch.id,
                    ReviewAssignment.state == LEASED,
                    ReviewAssignment.lease_expires_at > now,
                )
            )
            per_item = (
                select(Review.item_id, func.count().label("n"))
                .where(Review.batch_id == batch.id)
                .group_by(Review.item_id)
                .subquery()
            )
            complete = await session.scalar(
                select(func.count()).select_from(per_item).where(per_item.c.n >= batch.reviewers_per_item)
            )
        return {
            "items": batch.item_count,
            "items_complete": int(complete or 0),
            "reviews": int(reviews or 0),
            "reviews_needed": batch.item_count * batch.reviewers_per_item,
            "leased": int(leased or 0),
        }

    # -- claims and leases ---------------------------------------------------------------------------

    async def claim(self, principal: Principal, batch_id: str) -> dict[str, Any] | None:
        """The next item for this reviewer, locked to them until the lease runs out (their current
        one if they hold one); None when nothing is left for them."""
        require(principal, Permission.REVIEW)
        reviewer = reviewer_of(principal)
        async with self.db.session() as session:
            batch = await self._batch(session, principal, batch_id)
            held = await session.scalar(
                select(ReviewAssignment)
                .where(
                    ReviewAssignment.batch_id == batch.id,
                    ReviewAssignment.reviewer == reviewer,
                    ReviewAssignment.state == LEASED,
                    ReviewAssignment.lease_expires_at > self.clock(),
                )
                .limit(1)
            )
        if held is not None:
            return await self._item_for(principal, held.item_id, held)
        for _round in range(_CLAIM_ROUNDS):
            candidates = await self._unseen_items(batch, reviewer)
            if not candidates:
                return None
            for item_id in candidates:
                assignment = await self._take_slot(principal, batch, item_id, reviewer)
                if assignment is not None:
                    return await self._item_for(principal, item_id, assignment)
        return None

    async def _unseen_items(self, batch: ReviewBatch, reviewer: str) -> list[str]:
        """Items of the batch this reviewer has no assignment on and that may have a free slot."""
        now = self.clock()
        seen = exists().where(ReviewAssignment.item_id == ReviewItem.id, ReviewAssignment.reviewer == reviewer)
        held = (
            select(func.count())
            .select_from(ReviewAssignment)
            .where(
                ReviewAssignment.item_id == ReviewItem.id,
                ReviewAssignment.slot.is_not(None),
                (ReviewAssignment.state == DONE)
                | and_(ReviewAssignment.state == LEASED, ReviewAssignment.lease_expires_at > now),
            )
            .scalar_subquery()
        )
        query = (
            select(ReviewItem.id)
            .where(ReviewItem.batch_id == batch.id, ~seen, held < batch.reviewers_per_item)
            .order_by(ReviewItem.position)
            .limit(_CLAIM_WINDOW)
        )
        async with self.db.session() as session:
            return list(await session.scalars(query))

    async def _take_slot(
        self, principal: Principal, batch: ReviewBatch, item_id: str, reviewer: str, *, action: str = "review.claim"
    ) -> ReviewAssignment | None:
        """A new assignment of ``reviewer`` on the item's lowest free slot; None if another
        claimer got there first (or the item has no free slot)."""
        now = self.clock()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        ReviewAssignment.id,
                        ReviewAssignment.slot,
                        ReviewAssignment.state,
                        ReviewAssignment.lease_expires_at,
                    ).where(ReviewAssignment.item_id == item_id, ReviewAssignment.slot.is_not(None))
                )
            ).all()
        by_slot = {row.slot: row for row in rows}
        for slot in range(batch.reviewers_per_item):
            row = by_slot.get(slot)
            if row is not None and (row.state == DONE or (row.state == LEASED and row.lease_expires_at > now)):
                continue
            try:
                async with self.db.transaction() as session:
                    if row is not None:  # an abandoned lease: free its slot, if nobody else did
                        freed = await session.execute(
                            update(ReviewAssignment)
                            .where(
                                ReviewAssignment.id == row.id,
                                ReviewAssignment.state == LEASED,
                                ReviewAssignment.lease_expires_at <= now,
                            )
                            .values(state=EXPIRED, slot=None)
                        )
                        if freed.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult
                            return None
                    assignment = ReviewAssignment(
                        tenant_id=principal.tenant_id,
                        batch_id=batch.id,
                        item_id=item_id,
                        slot=slot,
                        reviewer=reviewer,
                        state=LEASED,
                        lease_expires_at=now + timedelta(seconds=batch.lease_s),
                        created_at=now,
                    )
                    session.add(assignment)
                    await session.flush()
                    audit(session, principal, action, f"review_item:{item_id}", reviewer=reviewer, slot=slot)
                return assignment
            except IntegrityError:
                return None
        return None

    async def assign(self, principal: Principal, batch_id: str, item_id: str, reviewer: str) -> dict[str, Any]:
        """Put ``reviewer`` (``user:<id>`` or ``key:<id>``) on an item, leased as a claim would be."""
        require(principal, Permission.MANAGE_DATASETS)
        if not reviewer or len(reviewer) > 128 or not reviewer.startswith(("user:", "key:")):
            raise InvalidRequest("Invalid request: reviewer must be user:<id> or key:<id>.", param="reviewer")
        async with self.db.session() as session:
            batch = await self._batch(session, principal, batch_id)
            item = await session.scalar(
                select(ReviewItem).where(ReviewItem.id == item_id[:32], ReviewItem.batch_id == batch.id)
            )
            if item is None:
                raise NotFound(f"No item {item_id[:64]!r} in this batch.")
            seen = await session.scalar(
                select(ReviewAssignment.id).where(
                    ReviewAssignment.item_id == item.id, ReviewAssignment.reviewer == reviewer
                )
            )
        if seen is not None:
            raise Conflict(f"{reviewer} already has (or had) this item.")
        assignment = await self._take_slot(principal, batch, item.id, reviewer, action="review.assign")
        if assignment is None:
            raise Conflict("The item has no free reviewer slot.")
        return assignment_json(assignment)

    async def release(self, principal: Principal, item_id: str) -> dict[str, Any]:
        """Give a claimed item back: its slot is free again (the reviewer will not get it again)."""
        require(principal, Permission.REVIEW)
        reviewer = reviewer_of(principal)
        async with self.db.transaction() as session:
            assignment = await self._own_assignment(session, principal, item_id, reviewer)
            result = await session.execute(
                update(ReviewAssignment)
                .where(ReviewAssignment.id == assignment.id, ReviewAssignment.state == LEASED)
                .values(state=EXPIRED, slot=None)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult
                raise Conflict("The item is not leased to you.")
            audit(session, principal, "review.release", f"review_item:{item_id}", reviewer=reviewer)
        assignment.state, assignment.slot = EXPIRED, None
        return assignment_json(assignment)

    async def _own_assignment(
        self, session: AsyncSession, principal: Principal, item_id: str, reviewer: str
    ) -> ReviewAssignment:
        assignment = await session.scalar(
            select(ReviewAssignment).where(
                ReviewAssignment.item_id == item_id[:32],
                ReviewAssignment.tenant_id == principal.tenant_id,
                ReviewAssignment.reviewer == reviewer,
            )
        )
        if assignment is None:
            item = await session.scalar(
                select(ReviewItem.id).where(ReviewItem.id == item_id[:32], ReviewItem.tenant_id == principal.tenant_id)
            )
            if item is None:
                raise NotFound(f"No review item {item_id[:64]!r} in this tenant.")
            raise Conflict("Claim the item before reviewing it (it is not assigned to you).")
        return assignment

    async def my_items(self, principal: Principal) -> list[dict[str, Any]]:
        """The items leased to the caller now, across batches."""
        require(principal, Permission.REVIEW)
        async with self.db.session() as session:
            rows = list(
                await session.scalars(
                    select(ReviewAssignment).where(
                        ReviewAssignment.tenant_id == principal.tenant_id,
                        ReviewAssignment.reviewer == reviewer_of(principal),
                        ReviewAssignment.state == LEASED,
                        ReviewAssignment.lease_expires_at > self.clock(),
                    )
                )
            )
        return [await self._item_for(principal, row.item_id, row) for row in rows]

    async def _item_for(
        self, principal: Principal, item_id: str, assignment: ReviewAssignment | None
    ) -> dict[str, Any]:
        async with self.db.session() as session:
            item = await session.scalar(
                select(ReviewItem).where(ReviewItem.id == item_id, ReviewItem.tenant_id == principal.tenant_id)
            )
            if item is None:
                raise NotFound(f"No review item {item_id[:64]!r} in this tenant.")
            ids = [i for i in (item.interaction_id, item.pair_interaction_id) if i is not None]
            rows = {
                row.id: dict(row._mapping)
                for row in await session.execute(
                    select(Interaction.__table__).where(
                        Interaction.id.in_(ids), Interaction.tenant_id == principal.tenant_id
                    )
                )
            }
        policy = content_mode(principal, self.ledger_default_mode)
        first = content_view(rows.get(item.interaction_id), policy)
        pair = content_view(rows.get(item.pair_interaction_id or ""), policy) if item.pair_interaction_id else None
        return item_json(item, first, pair, assignment)

    # -- reviews -----------------------------------------------------------------------------------

    async def submit(self, principal: Principal, item_id: str, body: Any) -> dict[str, Any]:
        """A reviewer's review of an item they hold (seed 000's ``finetune/review/{id}``)."""
        require(principal, Permission.REVIEW)
        reviewer = reviewer_of(principal)
        now = self.clock()
        async with self.db.transaction() as session:
            assignment = await self._own_assignment(session, principal, item_id, reviewer)
            batch = await session.get(ReviewBatch, assignment.batch_id)
            assert batch is not None  # the foreign key
            review_input = ReviewInput.parse(body, batch.kind)
            if assignment.state == DONE:
                raise Conflict("You have reviewed this item already.")
            taken = await session.execute(
                update(ReviewAssignment)
                .where(ReviewAssignment.id == assignment.id, ReviewAssignment.state == LEASED)
                .values(state=DONE, completed_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult
                raise Conflict("Your lease on this item ran out and another reviewer took it; claim another item.")
            review = Review(
                tenant_id=principal.tenant_id,
                batch_id=batch.id,
                item_id=assignment.item_id,
                assignment_id=assignment.id,
                reviewer=reviewer,
                feedback=review_input.feedback,
                verdict=review_input.verdict,
                corrected_answer=review_input.corrected_answer,
                preferred=review_input.preferred,
                created_at=now,
                **review_input.scores,
            )
            session.add(review)
            await session.flush()
            audit(
                session, principal, "review.submit", f"review_item:{assignment.item_id}", reviewer=reviewer,
                verdict=review_input.verdict, edited=review_input.corrected_answer is not None,
                preferred=review_input.preferred,
            )  # fmt: skip
        return review_json(review)

    async def item_reviews(self, principal: Principal, item_id: str) -> dict[str, Any]:
        """An item with every review it got (dataset managers)."""
        require(principal, Permission.MANAGE_DATASETS)
        view = await self._item_for(principal, item_id, None)
        async with self.db.session() as session:
            reviews = await session.scalars(
                select(Review).where(Review.item_id == view["id"]).order_by(Review.created_at)
            )
            view["reviews"] = [review_json(r) for r in reviews]
        return view

    # -- progress and agreement -------------------------------------------------------------------

    async def progress(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        """Per reviewer: reviews done, items leased now, leases abandoned. A reviewer without the
        manage permission sees their own line only."""
        require(principal, Permission.REVIEW)
        now = self.clock()
        async with self.db.session() as session:
            batch = await self._batch(session, principal, batch_id)
            rows = (
                await session.execute(
                    select(ReviewAssignment.reviewer, ReviewAssignment.state, ReviewAssignment.lease_expires_at).where(
                        ReviewAssignment.batch_id == batch.id
                    )
                )
            ).all()
        per: dict[str, dict[str, int]] = {}
        for row in rows:
            line = per.setdefault(row.reviewer, {"done": 0, "leased": 0, "abandoned": 0})
            if row.state == DONE:
                line["done"] += 1
            elif row.state == LEASED and row.lease_expires_at > now:
                line["leased"] += 1
            else:
                line["abandoned"] += 1
        if not principal.can(Permission.MANAGE_DATASETS):
            me = reviewer_of(principal)
            per = {me: per.get(me, {"done": 0, "leased": 0, "abandoned": 0})}
        reviewers = [{"reviewer": name, **line} for name, line in sorted(per.items())]
        return {
            "object": "review_progress",
            "batch_id": batch.id,
            "counts": await self._counts(batch),
            "reviewers": reviewers,
        }

    async def agreement(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        require(principal, Permission.MANAGE_DATASETS)
        async with self.db.session() as session:
            batch = await self._batch(session, principal, batch_id)
            reviews = list(await session.scalars(select(Review).where(Review.batch_id == batch.id)))
        return {
            "object": "review_agreement",
            "batch_id": batch.id,
            **agreement_report(reviews, batch.kind, self.settings.min_quality),
        }
