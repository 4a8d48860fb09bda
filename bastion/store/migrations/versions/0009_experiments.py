"""experiments: definitions, bandit weight history, client feedback; the ledger's experiment arm

Revision ID: 0009_experiments
Revises: 0008_knowledge
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_experiments"
down_revision = "0008_knowledge"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("target", _JSON, nullable=False),
        sa.Column("variants", _JSON, nullable=False),
        sa.Column("weights", _JSON, nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("seed", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("bandit", sa.Boolean(), nullable=False),
        sa.Column("correction", sa.String(length=32), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("started_at", stamp, nullable=True),
        sa.Column("stopped_at", stamp, nullable=True),
        sa.Column("bandit_updates", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_experiments_tenant_name"),
    )
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_index("ix_experiments_tenant_id", "experiments", ["tenant_id"])
    op.create_table(
        "experiment_weights",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("weights", _JSON, nullable=False),
        sa.Column("best_arm_probabilities", _JSON, nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "round"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("interaction_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_feedback_tenant_interaction", "feedback", ["tenant_id", "interaction_id"])
    # Nullable columns: added in place on both backends (no table rebuild of the ledger).
    op.add_column("interactions", sa.Column("experiment_id", sa.String(length=32), nullable=True))
    op.add_column("interactions", sa.Column("experiment_variant", sa.String(length=64), nullable=True))
    op.add_column("interactions", sa.Column("experiment_unit", sa.String(length=128), nullable=True))
    op.create_index("ix_interactions_tenant_experiment", "interactions", ["tenant_id", "experiment_id"])


def downgrade() -> None:
    op.drop_index("ix_interactions_tenant_experiment", table_name="interactions")
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("experiment_unit")
        batch_op.drop_column("experiment_variant")
        batch_op.drop_column("experiment_id")
    op.drop_index("ix_feedback_tenant_interaction", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("experiment_weights")
    op.drop_index("ix_experiments_tenant_id", table_name="experiments")
    op.drop_index("ix_experiments_status", table_name="experiments")
    op.drop_table("experiments")
