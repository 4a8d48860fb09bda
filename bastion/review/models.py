"""The review and dataset tables.

``review_batches`` (a queue prepared from a ledger filter) hold ``review_items`` (one interaction,
or two answers to one input for pairwise review); ``review_assignments`` are the reviewer slots of
an item (``reviewers_per_item`` of them, each leased to one reviewer at a time); ``reviews`` are the
submitted scores. ``datasets`` have immutable ``dataset_versions`` whose examples are frozen in
``dataset_examples`` (so a version exports byte-identically forever); ``dataset_exports`` is the
export history. Every row carries its tenant; every query filters by it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id, utcnow

#: The six quality dimensions of seed 000, each scored 1-5.
DIMENSIONS: tuple[str, ...] = ("relevance", "accuracy", "helpfulness", "safety", "coherence", "completeness")


class ReviewBatch(Base):
    __tablename__ = "review_batches"
    __table_args__ = (Index("ix_review_batches_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    #: What the review is for ("sft", "preference", or a label of the tenant's): an interaction is
    #: queued at most once per purpose.
    purpose: Mapped[str] = mapped_column(String(64))
    #: "single" (scores and a verdict) or "pairwise" (the better of two answers).
    kind: Mapped[str] = mapped_column(String(16))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reviewers_per_item: Mapped[int] = mapped_column(Integer, default=1)
    lease_s: Mapped[int] = mapped_column(Integer, default=900)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "purpose", "interaction_id", name="uq_review_items_purpose_interaction"),
        Index("ix_review_items_batch", "batch_id", "position"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("review_batches.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(64))
    interaction_id: Mapped[str] = mapped_column(String(64))
    #: Pairwise items: the second answer to the same input.
    pair_interaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewAssignment(Base):
    """A reviewer's slot on an item. ``(item_id, slot)`` is unique while the slot is held (an
    abandoned lease's row keeps its reviewer but gives up its slot: ``slot`` NULL), and
    ``(item_id, reviewer)`` is unique for good: no reviewer sees an item twice."""

    __tablename__ = "review_assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "slot", name="uq_review_assignments_slot"),
        UniqueConstraint("item_id", "reviewer", name="uq_review_assignments_reviewer"),
        Index("ix_review_assignments_tenant_reviewer", "tenant_id", "reviewer"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("review_batches.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"))
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    #: leased | done | expired
    state: Mapped[str] = mapped_column(String(16))
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("assignment_id", name="uq_reviews_assignment"),
        Index("ix_reviews_item", "item_id"),
        Index("ix_reviews_batch", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("review_batches.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"))
    assignment_id: Mapped[str] = mapped_column(ForeignKey("review_assignments.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(128))
    relevance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    accuracy: Mapped[int | None] = mapped_column(Integer, nullable=True)
    helpfulness: Mapped[int | None] = mapped_column(Integer, nullable=True)
    safety: Mapped[int | None] = mapped_column(Integer, nullable=True)
    coherence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completeness: Mapped[int | None] = mapped_column(Integer, nullable=True)
    feedback: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: approve | reject | needs-edit (single items); None for pairwise items.
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The reviewer's corrected answer: the training target (the original stays in the ledger).
    corrected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Pairwise items: "a" (the item's interaction) or "b" (its pair).
    preferred: Mapped[str | None] = mapped_column(String(1), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_datasets_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    #: "sft" (approved answers) or "preference" (pairwise choices).
    kind: Mapped[str] = mapped_column(String(16))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Counts, token statistics, source interaction ids, who built it and when.
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    example_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetExample(Base):
    """One example as frozen when its version was built (JSON text, our own key order)."""

    __tablename__ = "dataset_examples"

    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    interaction_id: Mapped[str] = mapped_column(String(64))
    example: Mapped[str] = mapped_column(Text)


class DatasetExport(Base):
    __tablename__ = "dataset_exports"
    __table_args__ = (Index("ix_dataset_exports_version", "version_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: queued | running | succeeded | failed
    status: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lines: Mapped[int | None] = mapped_column(Integer, nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
