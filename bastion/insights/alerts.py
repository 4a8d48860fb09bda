"""Configurable alerts over the insights (seed 004's and seed 000's thresholds), exposed in
``/metrics``: ``bastion_insights_alert{tenant,alert,severity}`` is 1 while an alert fires, and
``bastion_insights_value{tenant,metric}`` holds the value it was judged on. Every process refreshes
its gauges from the roll-ups every ``alerts.refresh_interval_s``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import distinct, func, select

from bastion.config.insights_settings import InsightsSettings
from bastion.insights import query, tables
from bastion.insights.drift import drift_report
from bastion.insights.events import EventPublisher
from bastion.insights.live import publish_alert_changes
from bastion.observability.metrics import REGISTRY
from bastion.store.db import Database
from bastion.store.models import Interaction
from bastion.store.periodic import PeriodicSweep

ALERT = Gauge(
    "bastion_insights_alert",
    "Insights alerts: 1 while firing, by tenant, alert and severity (docs/INSIGHTS.md).",
    ("tenant", "alert", "severity"),
    registry=REGISTRY,
)
VALUE = Gauge(
    "bastion_insights_value",
    "The value each insights alert is judged on, by tenant and metric.",
    ("tenant", "metric"),
    registry=REGISTRY,
)

#: (alert, severity) pairs every tenant reports, firing or not.
ALERTS = (
    ("cognitive_waste", "critical"),
    ("semantic_drift", "critical"),
    ("adversarial_stress", "critical"),
    ("error_rate", "warning"),
    ("error_rate", "critical"),
    ("response_time", "warning"),
    ("response_time", "critical"),
    ("token_quota", "warning"),
    ("token_quota", "critical"),
    ("session_count", "warning"),
    ("session_count", "critical"),
)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the alerts of one tenant are judged on (None: nothing to judge)."""

    cognitive_waste: float | None = None
    useful_tokens: int = 0
    wasted_tokens: int = 0
    adversarial_stress: float | None = None
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    tokens_today: int = 0
    sessions_last_hour: int = 0
    drift: float | None = None
    drift_threshold: float | None = None


def evaluate(o: Observed, settings: InsightsSettings) -> dict[tuple[str, str], bool]:
    """Which alerts fire. Cognitive waste with no useful token at all fires as soon as anything
    was wasted (the ratio is unbounded)."""
    a = settings.alerts
    waste = o.cognitive_waste > a.cognitive_waste if o.cognitive_waste is not None else o.wasted_tokens > 0
    quota = a.token_quota_per_day
    used = o.tokens_today / quota if quota else 0.0
    drift_limit = o.drift_threshold if o.drift_threshold is not None else a.semantic_drift
    return {
        ("cognitive_waste", "critical"): waste,
        ("semantic_drift", "critical"): o.drift is not None and o.drift > drift_limit,
        ("adversarial_stress", "critical"): (o.adversarial_stress or 0.0) > a.adversarial_stress,
        ("error_rate", "warning"): (o.error_rate or 0.0) > a.error_rate_warning,
        ("error_rate", "critical"): (o.error_rate or 0.0) > a.error_rate_critical,
        ("response_time", "warning"): (o.p95_latency_ms or 0.0) > a.response_time_warning_ms,
        ("response_time", "critical"): (o.p95_latency_ms or 0.0) > a.response_time_critical_ms,
        ("token_quota", "warning"): bool(quota) and used > a.token_quota_warning,
        ("token_quota", "critical"): bool(quota) and used > a.token_quota_critical,
        ("session_count", "warning"): o.sessions_last_hour > a.sessions_per_hour_warning,
        ("session_count", "critical"): o.sessions_last_hour > a.sessions_per_hour_critical,
    }


async def observe(db: Database, settings: InsightsSettings, tenant_id: str, now: datetime) -> Observed:
    """The figures of one tenant: the alert window's roll-ups, today's tokens, the last hour's
    distinct sessions (the one read of the ledger: an indexed count) and, when sampled, drift."""
    window = query.make_window(
        tenant_id, now - timedelta(minutes=settings.alerts.window_minutes), now, grain="5m", now=now
    )
    summary = await query.summary(db, window)
    day = query.make_window(tenant_id, now.replace(hour=0, minute=0, second=0, microsecond=0), now, grain="5m", now=now)
    tokens_today = (await query.summary(db, day))["tokens"]["total"] if settings.alerts.token_quota_per_day else 0
    ledger = Interaction.__table__
    async with db.engine.connect() as connection:
        sessions = (
            await connection.execute(
                select(func.count(distinct(ledger.c.session_id))).where(
                    ledger.c.tenant_id == tenant_id,
                    ledger.c.created_at >= now - timedelta(hours=1),
                    ledger.c.session_id.is_not(None),
                )
            )
        ).scalar()
    drift: dict[str, Any] = {}
    if settings.drift.enabled:
        drift = await drift_report(db, settings, tenant_id, window.since, window.until)
    m = summary["metrics"]
    return Observed(
        cognitive_waste=m["cognitive_waste"],
        useful_tokens=m["useful_tokens"],
        wasted_tokens=m["wasted_tokens"],
        adversarial_stress=m["adversarial_stress"],
        error_rate=summary["error_rate"],
        p95_latency_ms=summary["latency_ms"]["p95"],
        tokens_today=tokens_today,
        sessions_last_hour=int(sessions or 0),
        drift=drift.get("drift"),
        drift_threshold=drift.get("threshold"),
    )


def alert_values(o: Observed) -> dict[str, Any]:
    """The value each alert is judged on, by alert name."""
    return {
        "cognitive_waste": o.cognitive_waste,
        "semantic_drift": o.drift,
        "adversarial_stress": o.adversarial_stress,
        "error_rate": o.error_rate,
        "response_time": o.p95_latency_ms,
        "token_quota": o.tokens_today,
        "session_count": o.sessions_last_hour,
    }


def thresholds(settings: InsightsSettings, o: Observed) -> dict[tuple[str, str], float | None]:
    """The limit each alert fires above (token quota: tokens; None: that alert is off)."""
    a = settings.alerts
    quota = a.token_quota_per_day
    return {
        ("cognitive_waste", "critical"): a.cognitive_waste,
        ("semantic_drift", "critical"): o.drift_threshold if o.drift_threshold is not None else a.semantic_drift,
        ("adversarial_stress", "critical"): a.adversarial_stress,
        ("error_rate", "warning"): a.error_rate_warning,
        ("error_rate", "critical"): a.error_rate_critical,
        ("response_time", "warning"): a.response_time_warning_ms,
        ("response_time", "critical"): a.response_time_critical_ms,
        ("token_quota", "warning"): quota * a.token_quota_warning if quota else None,
        ("token_quota", "critical"): quota * a.token_quota_critical if quota else None,
        ("session_count", "warning"): a.sessions_per_hour_warning,
        ("session_count", "critical"): a.sessions_per_hour_critical,
    }


async def tenant_alerts(db: Database, settings: InsightsSettings, tenant_id: str, now: datetime) -> dict[str, Any]:
    """``GET /api/v1/insights/alerts``: every alert of one tenant, firing or not, judged now."""
    observed = await observe(db, settings, tenant_id, now)
    firing = evaluate(observed, settings)
    values = alert_values(observed)
    limits = thresholds(settings, observed)
    return {
        "object": "insights.alerts",
        "evaluated_at": now.isoformat(),
        "window_minutes": settings.alerts.window_minutes,
        "data": [
            {"alert": alert, "severity": severity, "firing": firing[(alert, severity)],
             "value": values[alert], "threshold": limits[(alert, severity)]}
            for alert, severity in ALERTS
        ],
    }  # fmt: skip


def publish(tenant_id: str, o: Observed, firing: dict[tuple[str, str], bool]) -> None:
    for (alert, severity), on in firing.items():
        ALERT.labels(tenant_id, alert, severity).set(1 if on else 0)
    values = {
        "cognitive_waste": o.cognitive_waste,
        "adversarial_stress": o.adversarial_stress,
        "error_rate": o.error_rate,
        "p95_latency_ms": o.p95_latency_ms,
        "tokens_today": o.tokens_today,
        "sessions_last_hour": o.sessions_last_hour,
        "semantic_drift": o.drift,
    }
    for metric, value in values.items():
        VALUE.labels(tenant_id, metric).set(float(value) if value is not None else float("nan"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlertMonitor:
    """Refreshes the alert gauges of every tenant with recent roll-ups (a gateway lifecycle)."""

    def __init__(
        self,
        db: Database,
        settings: InsightsSettings,
        clock: Callable[[], datetime] = _utcnow,
        events: EventPublisher | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        #: Where changes of state are announced (the dashboard's stream); None: nowhere.
        self.events = events
        self._states: dict[str, dict[tuple[str, str], bool]] = {}
        self._loop = PeriodicSweep(
            "insights_alerts", lambda: settings.alerts.refresh_interval_s, self._tick, "bastion.insights"
        )

    async def refresh(self) -> dict[str, dict[tuple[str, str], bool]]:
        now = self.clock()
        since = now - timedelta(days=1)
        r = tables.rollups
        async with self.db.engine.connect() as connection:
            tenants = [
                row[0]
                for row in await connection.execute(
                    select(r.c.tenant_id).distinct().where(r.c.grain == "1h", r.c.bucket >= since)
                )
            ]
        out = {}
        for tenant_id in sorted(tenants):
            observed = await observe(self.db, self.settings, tenant_id, now)
            out[tenant_id] = firing = evaluate(observed, self.settings)
            publish(tenant_id, observed, firing)
            if self.events is not None:
                before = self._states.get(tenant_id)
                await publish_alert_changes(self.events, tenant_id, before, firing, alert_values(observed))
            self._states[tenant_id] = firing
        return out

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _tick(self) -> int:
        await self.refresh()
        return 0  # nothing removed: the loop logs nothing
