"""What the roll-up job and the alert monitor publish on the event stream (``events.py``): after a
roll-up run, per tenant whose buckets changed, those 5-minute buckets' new totals; after an alert
refresh, each alert that started or stopped firing. Metadata only: counts, rates, costs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select

from bastion.insights import metrics, query, tables
from bastion.insights.events import ALERT, ROLLUP, EventPublisher
from bastion.store.db import Database

log = structlog.get_logger("bastion.insights")
_R = tables.rollups


async def bucket_totals(db: Database, buckets: Sequence[datetime]) -> dict[str, list[dict[str, Any]]]:
    """Per tenant, the totals of each of these 5-minute buckets it has rows in (tenant level)."""
    if not buckets:
        return {}
    group = [_R.c.tenant_id, _R.c.bucket, _R.c.outcome]
    sums = [
        *(func.sum(_R.c[name]).label(name) for name in tables.SUM_COLUMNS),
        *(func.max(_R.c[name]).label(name) for name in tables.MAX_COLUMNS),
    ]
    statement = select(*group, *sums).where(_R.c.grain == "t5m", _R.c.bucket.in_(list(buckets))).group_by(*group)
    per: dict[str, dict[datetime, metrics.Totals]] = {}
    async with db.engine.connect() as connection:
        for row in (await connection.execute(statement)).mappings():
            totals = per.setdefault(row["tenant_id"], {}).setdefault(row["bucket"], metrics.Totals())
            totals.add(row["outcome"], dict(row))
    return {tenant: [query.point(b, t) for b, t in sorted(points.items())] for tenant, points in per.items()}


async def publish_rollup(db: Database, events: EventPublisher, buckets: Sequence[datetime]) -> int:
    """One ``rollup`` event per tenant with changed buckets; how many were published. A failure
    is logged, never raised: the roll-up itself succeeded."""
    try:
        per_tenant = await bucket_totals(db, buckets)
        published = 0
        for tenant_id, points in sorted(per_tenant.items()):
            if await events.publish(tenant_id, ROLLUP, {"grain": "5m", "buckets": points}) is not None:
                published += 1
        return published
    except Exception as exc:
        log.warning("insights_rollup_event_failed", error=repr(exc))
        return 0


async def publish_alert_changes(
    events: EventPublisher,
    tenant_id: str,
    before: Mapping[tuple[str, str], bool] | None,
    now: Mapping[tuple[str, str], bool],
    values: Mapping[str, Any],
) -> int:
    """An ``alert`` event per alert whose state changed since ``before`` (None: the first look,
    when only firing alerts are news); how many were published."""
    published = 0
    for (alert, severity), firing in sorted(now.items()):
        previous = before.get((alert, severity), False) if before is not None else False
        if firing == previous:
            continue
        data = {"alert": alert, "severity": severity, "firing": firing, "value": values.get(alert)}
        try:
            if await events.publish(tenant_id, ALERT, data) is not None:
                published += 1
        except Exception as exc:
            log.warning("insights_alert_event_failed", error=repr(exc))
    return published
