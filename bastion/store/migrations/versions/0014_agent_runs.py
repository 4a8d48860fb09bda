"""agent runs: one row per run (owner, plan, input, budget, status, outputs, spending, trace)

Revision ID: 0014_agent_runs
Revises: 0013_redteam
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_agent_runs"
down_revision = "0013_redteam"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "agent_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("owner_method", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("template", sa.String(length=128), nullable=True),
        sa.Column("planner", sa.String(length=16), nullable=False),
        sa.Column("task", sa.Text(), nullable=True),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("planner_reason", sa.Text(), nullable=True),
        sa.Column("input", _JSON, nullable=False),
        sa.Column("budget", _JSON, nullable=False),
        sa.Column("grants", _JSON, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outputs", _JSON, nullable=True),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("spent", _JSON, nullable=True),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("trace", _JSON, nullable=False),
        sa.Column("links", _JSON, nullable=False),
        sa.Column("trace_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("started_at", stamp, nullable=True),
        sa.Column("finished_at", stamp, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agent_runs_tenant_created", "agent_runs", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_runs_tenant_created", table_name="agent_runs")
    op.drop_table("agent_runs")
