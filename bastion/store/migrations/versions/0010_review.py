"""review: review batches, items, assignments (reviewer slots with leases), reviews; datasets,
their immutable versions and frozen examples, and the export history

Revision ID: 0010_review
Revises: 0009_experiments
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_review"
down_revision = "0009_experiments"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = sa.DateTime(timezone=True)


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant_id", sa.String(length=32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "review_batches",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filter", _JSON, nullable=False),
        sa.Column("reviewers_per_item", sa.Integer(), nullable=False),
        sa.Column("lease_s", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_review_batches_tenant_created", "review_batches", ["tenant_id", "created_at"])
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column(
            "batch_id", sa.String(length=32), sa.ForeignKey("review_batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=False),
        sa.Column("pair_interaction_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("tenant_id", "purpose", "interaction_id", name="uq_review_items_purpose_interaction"),
    )
    op.create_index("ix_review_items_batch", "review_items", ["batch_id", "position"])
    op.create_table(
        "review_assignments",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column(
            "batch_id", sa.String(length=32), sa.ForeignKey("review_batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "item_id", sa.String(length=32), sa.ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_expires_at", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("completed_at", _TIME, nullable=True),
        sa.UniqueConstraint("item_id", "slot", name="uq_review_assignments_slot"),
        sa.UniqueConstraint("item_id", "reviewer", name="uq_review_assignments_reviewer"),
    )
    op.create_index("ix_review_assignments_tenant_reviewer", "review_assignments", ["tenant_id", "reviewer"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column(
            "batch_id", sa.String(length=32), sa.ForeignKey("review_batches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "item_id", sa.String(length=32), sa.ForeignKey("review_items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "assignment_id",
            sa.String(length=32),
            sa.ForeignKey("review_assignments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=True)
            for name in ("relevance", "accuracy", "helpfulness", "safety", "coherence", "completeness")
        ),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("preferred", sa.String(length=1), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("assignment_id", name="uq_reviews_assignment"),
    )
    op.create_index("ix_reviews_item", "reviews", ["item_id"])
    op.create_index("ix_reviews_batch", "reviews", ["batch_id"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_datasets_tenant_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column("dataset_id", sa.String(length=32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filter", _JSON, nullable=False),
        sa.Column("thresholds", _JSON, nullable=False),
        sa.Column("manifest", _JSON, nullable=False),
        sa.Column("example_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
    )
    op.create_table(
        "dataset_examples",
        sa.Column(
            "version_id",
            sa.String(length=32),
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("interaction_id", sa.String(length=64), nullable=False),
        sa.Column("example", sa.Text(), nullable=False),
    )
    op.create_table(
        "dataset_exports",
        sa.Column("id", sa.String(length=32), primary_key=True),
        _tenant(),
        sa.Column(
            "version_id", sa.String(length=32), sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("options", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("file_id", sa.String(length=64), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("lines", sa.Integer(), nullable=True),
        sa.Column("report", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
    )
    op.create_index("ix_dataset_exports_version", "dataset_exports", ["version_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_dataset_exports_version", table_name="dataset_exports")
    op.drop_table("dataset_exports")
    op.drop_table("dataset_examples")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
    op.drop_index("ix_reviews_batch", table_name="reviews")
    op.drop_index("ix_reviews_item", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_review_assignments_tenant_reviewer", table_name="review_assignments")
    op.drop_table("review_assignments")
    op.drop_index("ix_review_items_batch", table_name="review_items")
    op.drop_table("review_items")
    op.drop_index("ix_review_batches_tenant_created", table_name="review_batches")
    op.drop_table("review_batches")
