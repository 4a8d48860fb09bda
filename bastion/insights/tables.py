"""The insights tables (migration ``0011_insights``).

``insight_rollups``: one row per grain (``5m``, ``1h``, ``1d``; their summary levels ``t..`` and
``m..``, see ``LEVELS``), bucket start (UTC), tenant, model,
prompt and version, key, outcome (``ok``, ``error``, ``blocked``, ``truncated``) and experiment arm,
with counts, token sums, cost in nano-dollars (integers add up exactly on both databases), latency
and time-to-first-token sums, maxima and fixed-bound histograms (``lat_00``..``lat_15``,
``ttft_00``..``ttft_15``, bounds in ``histogram.BOUNDS_MS``).

``insight_guard``: guard findings per category (the scanner that flagged) and side, same buckets.

``insight_drift``: per hour, tenant, model, prompt and embedding model, the sum of the unit
response embeddings sampled in that hour and their count (a centroid is sum / count).

``insight_state``: the roll-up job's watermark and lease.

Missing dimensions are stored as ``''`` (and prompt version ``0``) so they can be part of the key.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, String, Table

from bastion.insights.histogram import BUCKETS
from bastion.store.models import Base, UTCDateTime

GRAINS: Final = ("5m", "1h", "1d")
#: Summary levels of each grain: the same columns summed over every key column but those kept
#: (roll-up rows, guard rows), in rows of grain ``<level><grain>``: ``t5m``, ``t1h``, ``t1d`` (tenant
#: totals), ``m5m``, ``m1h``, ``m1d`` (per model). A window without a key or prompt filter reads
#: these: a handful of rows per bucket however many keys and prompts there are.
LEVELS: Final = {
    "t": (("tenant_id", "outcome"), ("tenant_id", "side", "category")),
    "m": (("tenant_id", "model", "outcome"), ("tenant_id", "model", "side", "category")),
}
OUTCOMES: Final = ("ok", "error", "blocked", "truncated")

#: The key of a roll-up row besides grain and bucket, in order.
DIMENSIONS: Final = ("tenant_id", "model", "prompt_id", "prompt_version", "key_id", "outcome", "arm")
LATENCY_COLUMNS: Final = tuple(f"lat_{i:02d}" for i in range(BUCKETS))
TTFT_COLUMNS: Final = tuple(f"ttft_{i:02d}" for i in range(BUCKETS))
#: Columns summed when rows are merged (a coarser grain from a finer one).
SUM_COLUMNS: Final = (
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
    *LATENCY_COLUMNS,
    *TTFT_COLUMNS,
)
#: Columns merged by taking the largest.
MAX_COLUMNS: Final = ("latency_max_us", "ttft_max_us")

GUARD_DIMENSIONS: Final = ("tenant_id", "model", "prompt_id", "prompt_version", "key_id", "side", "category")
GUARD_SUMS: Final = ("requests", "findings", "blocked")


def _key(*names: str) -> list[Column[object]]:
    widths = {"tenant_id": 32, "model": 256, "prompt_id": 128, "key_id": 32, "outcome": 16, "arm": 97}
    widths |= {"side": 8, "category": 64, "embedding_model": 128}
    columns: list[Column[object]] = []
    for name in names:
        if name == "prompt_version":
            columns.append(Column(name, Integer, primary_key=True, nullable=False, server_default="0"))
        else:
            columns.append(Column(name, String(widths[name]), primary_key=True, nullable=False, server_default=""))
    return columns


rollups = Table(
    "insight_rollups",
    Base.metadata,
    Column("grain", String(4), primary_key=True),
    Column("bucket", UTCDateTime(), primary_key=True),
    *_key(*DIMENSIONS),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in SUM_COLUMNS),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in MAX_COLUMNS),
    Index("ix_insight_rollups_tenant", "tenant_id", "grain", "bucket"),
    Index("ix_insight_rollups_model", "tenant_id", "grain", "model", "bucket"),
    Index("ix_insight_rollups_grain_bucket", "grain", "bucket"),
)

guard = Table(
    "insight_guard",
    Base.metadata,
    Column("grain", String(4), primary_key=True),
    Column("bucket", UTCDateTime(), primary_key=True),
    *_key(*GUARD_DIMENSIONS),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in GUARD_SUMS),
    Index("ix_insight_guard_tenant", "tenant_id", "grain", "bucket"),
    Index("ix_insight_guard_grain_bucket", "grain", "bucket"),
)

DRIFT_DIMENSIONS: Final = ("tenant_id", "model", "prompt_id", "prompt_version", "embedding_model")

drift = Table(
    "insight_drift",
    Base.metadata,
    Column("bucket", UTCDateTime(), primary_key=True),
    *_key(*DRIFT_DIMENSIONS),
    Column("samples", Integer, nullable=False, server_default="0"),
    #: float64 little-endian sum of unit vectors.
    Column("vector_sum", LargeBinary, nullable=False),
    Index("ix_insight_drift_tenant", "tenant_id", "bucket"),
)

state = Table(
    "insight_state",
    Base.metadata,
    Column("name", String(32), primary_key=True),
    Column("watermark", UTCDateTime(), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("rows_seen", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=True),
    Column("latency_ms", Float, nullable=True),
)
