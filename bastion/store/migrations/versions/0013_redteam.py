"""redteam: the ``redteam_runs`` table (runs executed here and runs imported from garak).

Revision ID: 0013_redteam
Revises: 0012_knowledge_backends
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013_redteam"
down_revision = "0012_knowledge_backends"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "redteam_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("prompt_id", sa.String(128), nullable=True),
        sa.Column("guard", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("report", _JSON, nullable=True),
        sa.Column("owner_method", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
    )
    op.create_index("ix_redteam_runs_tenant_created", "redteam_runs", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_redteam_runs_tenant_created", table_name="redteam_runs")
    op.drop_table("redteam_runs")
