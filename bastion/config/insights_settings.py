"""Settings of insights over the ledger (docs/INSIGHTS.md): the roll-up job, retention, alerts,
semantic drift and log ingestion.

    insights.enabled           the roll-up job and the /api/v1/insights routes (on by default)
    insights.retention         how long raw ledger rows and each roll-up grain are kept
    insights.alerts            seed 004's and seed 000's thresholds, exposed in /metrics
    insights.drift             response-embedding drift against a baseline window
    insights.ingest            POST /api/metrics/ingest (external interactions)
    insights.stream            GET /api/v1/insights/stream (the dashboard's live events)
"""

from __future__ import annotations

from pydantic import Field

from bastion.config.section import Strict


class InsightsRetention(Strict):
    """Days each kind of row is kept (None: forever). A grain must outlive the one above it is
    built from by at least that grain's width: hours are rebuilt from 5-minute rows, days from hours."""

    ledger_days: float | None = Field(None, gt=0, description="Raw ledger rows (interactions); None keeps them.")
    rollup_5m_days: float = Field(8.0, ge=1, description="5-minute roll-ups.")
    rollup_1h_days: float = Field(120.0, ge=2, description="Hourly roll-ups.")
    rollup_1d_days: float = Field(1100.0, ge=2, description="Daily roll-ups.")


class InsightsAlerts(Strict):
    """Alert thresholds; each alert is a gauge ``bastion_insights_alert`` (1 firing, 0 not)."""

    window_minutes: int = Field(60, ge=5, le=1440, description="Window the alerts are evaluated over.")
    cognitive_waste: float = Field(2.5, gt=0, description="Wasted tokens per useful output token (seed 004).")
    semantic_drift: float = Field(0.3, gt=0, description="Cosine distance of the window's centroid (seed 004).")
    adversarial_stress: float = Field(0.7, gt=0, le=1, description="Share of requests flagged (seed 004).")
    error_rate_warning: float = Field(0.01, gt=0, le=1, description="Seed 000: warning above 1%.")
    error_rate_critical: float = Field(0.05, gt=0, le=1, description="Seed 000 and seed 004: critical above 5%.")
    response_time_warning_ms: float = Field(2000.0, gt=0, description="p95 latency; seed 000: warning above 2 s.")
    response_time_critical_ms: float = Field(5000.0, gt=0, description="p95 latency; critical above 5 s.")
    token_quota_per_day: int | None = Field(
        None, ge=1, description="Tokens a tenant may use per UTC day; None: no quota alert (seed 000)."
    )
    token_quota_warning: float = Field(0.8, gt=0, le=1, description="Share of the quota for a warning.")
    token_quota_critical: float = Field(0.95, gt=0, le=1, description="Share of the quota for a critical alert.")
    sessions_per_hour_warning: int = Field(1000, ge=1, description="Distinct sessions in the last hour (seed 000).")
    sessions_per_hour_critical: int = Field(2000, ge=1)
    refresh_interval_s: float = Field(60.0, gt=0, description="How often each process refreshes its alert gauges.")


class InsightsDrift(Strict):
    enabled: bool = Field(
        False, description="Embed recorded answers with the local model in the roll-up job (needs the local extra)."
    )
    samples_per_bucket: int = Field(
        32, ge=1, le=1000, description="Most answers embedded per 5-minute bucket, tenant, model and prompt."
    )
    baseline_days: float = Field(7.0, gt=0, description="Default baseline: the days before the window.")
    min_threshold: float = Field(0.02, ge=0, description="Floor of the threshold the baseline's variability gives.")


class InsightsIngest(Strict):
    enabled: bool = True
    max_records: int = Field(500, ge=1, le=10_000, description="Records per POST /api/metrics/ingest.")
    per_minute: int = Field(60, ge=1, description="Ingest requests per minute per API key.")


class InsightsStream(Strict):
    """The live event stream: roll-up runs and alert changes, per tenant, replayable by id."""

    replay_events: int = Field(256, ge=1, le=100_000, description="Events kept per tenant for Last-Event-ID.")
    keepalive_s: float = Field(15.0, gt=0, le=300, description="Idle time before a keep-alive comment.")
    max_connection_s: float = Field(
        300.0, gt=0, description="A stream ends after this long; the client reconnects (the key is checked again)."
    )
    redis_prefix: str = Field("bastion:insights:", min_length=1, description="Prefix of the stream's Redis keys.")


class InsightsSettings(Strict):
    enabled: bool = True
    interval_s: float = Field(30.0, gt=0, description="How often the roll-up job is submitted.")
    commit_slack_s: float = Field(
        120.0,
        ge=0,
        description="Rows written up to this long before the watermark are looked at again: a ledger "
        "transaction that began before the watermark and committed after it is still rolled up.",
    )
    buckets_per_transaction: int = Field(48, ge=1, description="5-minute buckets recomputed per transaction.")
    retention: InsightsRetention = Field(default_factory=InsightsRetention)
    alerts: InsightsAlerts = Field(default_factory=InsightsAlerts)
    drift: InsightsDrift = Field(default_factory=InsightsDrift)
    ingest: InsightsIngest = Field(default_factory=InsightsIngest)
    stream: InsightsStream = Field(default_factory=InsightsStream)
