"""insights: roll-up tables (5-minute, hour, day), guard findings, drift sums, the job's state,
and ``interactions.written_at`` (when a ledger row reached the database), the roll-up watermark.

SQLite cannot add a column whose default is not a constant, so there the interactions table is
rebuilt (once); existing rows get the migration's time, which makes the first roll-up see them all.

Revision ID: 0011_insights
Revises: 0010_review
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011_insights"
down_revision = "0010_review"
branch_labels = None
depends_on = None

_BUCKETS = 16
_TIME = sa.DateTime(timezone=True)
_WIDTHS = {"tenant_id": 32, "model": 256, "prompt_id": 128, "key_id": 32, "outcome": 16, "arm": 97}
_WIDTHS |= {"side": 8, "category": 64, "embedding_model": 128}
_SUMS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "retry_tokens",
    "cost_nusd",
    "latency_us_sum",
    "ttft_requests",
    "ttft_us_sum",
    "cache_hits",
    "flagged",
    "retries",
    *(f"lat_{i:02d}" for i in range(_BUCKETS)),
    *(f"ttft_{i:02d}" for i in range(_BUCKETS)),
    "latency_max_us",
    "ttft_max_us",
)


def _key(*names: str) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = []
    for name in names:
        kind: sa.types.TypeEngine[Any] = sa.Integer() if name == "prompt_version" else sa.String(_WIDTHS[name])
        default = "0" if name == "prompt_version" else ""
        columns.append(sa.Column(name, kind, primary_key=True, nullable=False, server_default=default))
    return columns


def _counts(*names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in names]


def upgrade() -> None:
    op.create_table(
        "insight_rollups",
        sa.Column("grain", sa.String(4), primary_key=True),
        sa.Column("bucket", _TIME, primary_key=True),
        *_key("tenant_id", "model", "prompt_id", "prompt_version", "key_id", "outcome", "arm"),
        *_counts(*_SUMS),
    )
    op.create_index("ix_insight_rollups_tenant", "insight_rollups", ["tenant_id", "grain", "bucket"])
    op.create_index("ix_insight_rollups_model", "insight_rollups", ["tenant_id", "grain", "model", "bucket"])
    op.create_index("ix_insight_rollups_grain_bucket", "insight_rollups", ["grain", "bucket"])
    op.create_table(
        "insight_guard",
        sa.Column("grain", sa.String(4), primary_key=True),
        sa.Column("bucket", _TIME, primary_key=True),
        *_key("tenant_id", "model", "prompt_id", "prompt_version", "key_id", "side", "category"),
        *_counts("requests", "findings", "blocked"),
    )
    op.create_index("ix_insight_guard_tenant", "insight_guard", ["tenant_id", "grain", "bucket"])
    op.create_index("ix_insight_guard_grain_bucket", "insight_guard", ["grain", "bucket"])
    op.create_table(
        "insight_drift",
        sa.Column("bucket", _TIME, primary_key=True),
        *_key("tenant_id", "model", "prompt_id", "prompt_version", "embedding_model"),
        sa.Column("samples", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("vector_sum", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_insight_drift_tenant", "insight_drift", ["tenant_id", "bucket"])
    op.create_table(
        "insight_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("watermark", _TIME, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", _TIME, nullable=True),
        sa.Column("rows_seen", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at", _TIME, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
    )
    written_at = sa.Column("written_at", _TIME, nullable=True, server_default=sa.text("CURRENT_TIMESTAMP"))
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("interactions", recreate="always") as batch:
            batch.add_column(written_at)
    else:
        op.add_column("interactions", written_at)
    op.create_index("ix_interactions_written_at", "interactions", ["written_at"])


def downgrade() -> None:
    op.drop_index("ix_interactions_written_at", table_name="interactions")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("interactions", recreate="always") as batch:
            batch.drop_column("written_at")
    else:
        op.drop_column("interactions", "written_at")
    for table in ("insight_state", "insight_drift", "insight_guard", "insight_rollups"):
        op.drop_table(table)
