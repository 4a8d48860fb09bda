"""What the insights API serves, read from the roll-up tables only (never the ledger): a window's
summary, time series, top-N by cost, tokens or requests, and the guard panel. Every query is
scoped to one tenant.

A window is ``[since, until)`` in UTC, widened to whole buckets of its grain: ``5m`` up to 6
hours, ``1h`` up to 8 days, ``1d`` beyond (or as asked). A grain whose retention has passed for
the window's start is replaced by the next coarser one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select

from bastion.config.insights_settings import InsightsRetention
from bastion.errors import InvalidRequest
from bastion.insights import metrics, tables
from bastion.insights.aggregate import WIDTH, floor
from bastion.insights.histogram import percentile
from bastion.store.db import Database

#: Most buckets one time series returns.
MAX_POINTS: Final = 2000
TOP_DIMENSIONS: Final = {"model": "model", "key": "key_id", "prompt": "prompt_id", "arm": "arm", "outcome": "outcome"}
TOP_ORDERS: Final = ("cost", "tokens", "requests")
_R = tables.rollups
_G = tables.guard
_VALUES = (*tables.SUM_COLUMNS,)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Window:
    tenant_id: str
    since: datetime
    until: datetime
    grain: str
    model: str | None = None
    key_id: str | None = None
    prompt_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"from": self.since.isoformat(), "to": self.until.isoformat(), "grain": self.grain}


def _coarser(grain: str) -> str:
    return {"5m": "1h", "1h": "1d"}.get(grain, "1d")


def make_window(
    tenant_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    grain: str | None = None,
    retention: InsightsRetention | None = None,
    now: datetime | None = None,
    model: str | None = None,
    key_id: str | None = None,
    prompt_id: str | None = None,
) -> Window:
    """A window with its grain; ``until`` defaults to now, ``since`` to 24 hours before it."""
    now = now or datetime.now(UTC)
    for name, value in (("from", since), ("to", until)):
        if value is not None and not _EARLIEST <= value <= _LATEST:
            raise InvalidRequest(f"Invalid request: {name} must be between the years 2000 and 9999.", param=name)
    until = until or now
    since = since or until - timedelta(hours=24)
    if since >= until:
        raise InvalidRequest("Invalid request: from must be earlier than to.", param="from")
    if grain is not None and grain not in tables.GRAINS:
        raise InvalidRequest(f"Invalid request: grain must be one of {', '.join(tables.GRAINS)}.", param="grain")
    span = until - since
    chosen = grain or ("5m" if span <= timedelta(hours=6) else "1h" if span <= timedelta(days=8) else "1d")
    if retention is not None:
        kept = {"5m": retention.rollup_5m_days, "1h": retention.rollup_1h_days, "1d": retention.rollup_1d_days}
        while chosen != "1d" and since < now - timedelta(days=kept[chosen]):
            chosen = _coarser(chosen)
    start = floor(since, chosen)
    end = floor(until, chosen)
    if end < until:
        end += WIDTH[chosen]
    if (end - start) / WIDTH[chosen] > MAX_POINTS:
        raise InvalidRequest(
            f"Invalid request: the window holds more than {MAX_POINTS} buckets of {chosen}; choose a coarser grain.",
            param="grain",
        )
    return Window(tenant_id, start, end, chosen, model, key_id, prompt_id)


def _level(w: Window, by: str | None) -> str:
    """The grain to read: a summary level when the filters and the grouping allow one."""
    if w.key_id is not None or w.prompt_id is not None or by not in (None, "model"):
        return w.grain
    if w.model is None and by is None:
        return f"t{w.grain}"
    return f"m{w.grain}"


def _where(table: Any, w: Window, *, by: str | None = "") -> list[Any]:
    """The window's rows, from the coarsest summary level that holds what is grouped by ``by``
    (None: nothing; the default ``''``: the full key)."""
    conditions = [
        table.c.tenant_id == w.tenant_id,
        table.c.grain == _level(w, by),
        table.c.bucket >= w.since,
        table.c.bucket < w.until,
    ]
    if w.model is not None:
        conditions.append(table.c.model == w.model)
    if w.key_id is not None:
        conditions.append(table.c.key_id == w.key_id)
    if w.prompt_id is not None:
        conditions.append(table.c.prompt_id == w.prompt_id)
    return conditions


def _sums() -> list[Any]:
    return [
        *(func.sum(_R.c[name]).label(name) for name in _VALUES),
        *(func.max(_R.c[name]).label(name) for name in tables.MAX_COLUMNS),
    ]


async def _fetch(db: Database, query: Any) -> list[dict[str, Any]]:
    async with db.engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(query)).mappings()]


async def totals(db: Database, w: Window, by: str | None = None) -> dict[Any, metrics.Totals]:
    """Totals of the window (key None), or per value of the roll-up column ``by``."""
    group = [_R.c.outcome] + ([_R.c[by]] if by else [])
    query = select(*group, *_sums()).where(*_where(_R, w, by=by)).group_by(*group)
    out: dict[Any, metrics.Totals] = {}
    for row in await _fetch(db, query):
        key = row[by] if by else None
        out.setdefault(key, metrics.Totals()).add(row["outcome"], row)
    return out


async def guard_counts(db: Database, w: Window, by: str | None = None) -> dict[Any, dict[str, int]]:
    """Requests flagged per guard category (either side counted once per side)."""
    group = [_G.c.category] + ([_G.c[by]] if by else [])
    where = _where(_G, w, by=by)
    query = select(*group, func.sum(_G.c.requests).label("requests")).where(*where).group_by(*group)
    out: dict[Any, dict[str, int]] = {}
    for row in await _fetch(db, query):
        out.setdefault(row[by] if by else None, {})[row["category"]] = int(row["requests"] or 0)
    return out


async def summary(db: Database, w: Window) -> dict[str, Any]:
    """``GET /api/v1/insights/summary``: the window's totals and metrics."""
    t = (await totals(db, w)).get(None, metrics.Totals())
    categories = (await guard_counts(db, w)).get(None, {})
    out = {"object": "insights.summary", "window": w.to_json(), **metrics.summary(t)}
    out["metrics"]["stress_by_category"] = metrics.stress_by_category(t, categories)
    return out


async def breakdown(db: Database, w: Window, by: str) -> dict[str, Any]:
    """Seed 004's metrics per model or per prompt (``by``: ``model``, ``prompt``)."""
    column = TOP_DIMENSIONS.get(by)
    if by not in ("model", "prompt", "key", "arm") or column is None:
        raise InvalidRequest("Invalid request: by must be model, prompt, key or arm.", param="by")
    per = await totals(db, w, column)
    # Guard rows are not kept per arm: an arm's categories are not known (its ``flagged`` is).
    categories = await guard_counts(db, w, column) if column in tables.GUARD_DIMENSIONS else {}
    data = []
    for value in sorted(per):
        s = metrics.summary(per[value])
        s["metrics"]["stress_by_category"] = metrics.stress_by_category(per[value], categories.get(value, {}))
        data.append({by: value, **s})
    return {"object": "insights.breakdown", "window": w.to_json(), "by": by, "data": data}


def point(bucket: datetime, t: metrics.Totals) -> dict[str, Any]:
    n = t.total_requests
    return {
        "bucket": bucket.isoformat(),
        "requests": n,
        "errors": t.requests.get("error", 0),
        "blocked": t.requests.get("blocked", 0),
        "truncated": t.requests.get("truncated", 0),
        "prompt_tokens": sum(t.prompt_tokens.values()),
        "completion_tokens": sum(t.completion_tokens.values()),
        "cost_usd": round(t.cost_nusd / 1e9, 9),
        "cache_hits": t.cache_hits,
        "flagged": t.flagged,
        "latency_ms": {q: percentile(t.latency_histogram, v, t.latency_max_us / 1000.0) for q, v in _QS},
        "ttft_ms": {q: percentile(t.ttft_histogram, v, t.ttft_max_us / 1000.0) for q, v in _QS},
        "token_efficiency": metrics.token_efficiency(t),
        "cognitive_waste": metrics.cognitive_waste(t),
        "adversarial_stress": metrics.adversarial_stress(t),
    }


_QS = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


async def timeseries(db: Database, w: Window) -> dict[str, Any]:
    """One point per bucket of the window's grain that has requests, oldest first."""
    group = [_R.c.bucket, _R.c.outcome]
    query = select(*group, *_sums()).where(*_where(_R, w, by=None)).group_by(*group)
    per: dict[datetime, metrics.Totals] = {}
    for row in await _fetch(db, query):
        per.setdefault(row["bucket"], metrics.Totals()).add(row["outcome"], row)
    points = [point(bucket, per[bucket]) for bucket in sorted(per)]
    return {"object": "insights.timeseries", "window": w.to_json(), "data": points}


async def top(db: Database, w: Window, by: str, order: str, limit: int) -> dict[str, Any]:
    """The ``limit`` models, keys, prompts or arms with the most cost, tokens or requests."""
    column = TOP_DIMENSIONS.get(by)
    if column is None or by == "outcome":
        raise InvalidRequest("Invalid request: by must be model, key, prompt or arm.", param="by")
    if order not in TOP_ORDERS:
        raise InvalidRequest(f"Invalid request: order must be one of {', '.join(TOP_ORDERS)}.", param="order")
    tokens = func.sum(_R.c.prompt_tokens + _R.c.completion_tokens)
    measures = {"cost": func.sum(_R.c.cost_nusd), "tokens": tokens, "requests": func.sum(_R.c.requests)}
    query = (
        select(
            _R.c[column].label("value"),
            measures["requests"].label("requests"),
            tokens.label("tokens"),
            measures["cost"].label("cost"),
        )
        .where(*_where(_R, w, by=column))
        .group_by(_R.c[column])
        .order_by(measures[order].desc(), _R.c[column])
        .limit(limit)
    )
    data = [
        {by: row["value"], "requests": int(row["requests"]), "tokens": int(row["tokens"]),
         "cost_usd": round(int(row["cost"]) / 1e9, 9)}
        for row in await _fetch(db, query)
    ]  # fmt: skip
    return {"object": "insights.top", "window": w.to_json(), "by": by, "order": order, "data": data}


async def guard_panel(db: Database, w: Window) -> dict[str, Any]:
    """Detections by category and side over the window, and per bucket."""
    requests = (await totals(db, w)).get(None, metrics.Totals()).total_requests
    group = [_G.c.bucket, _G.c.side, _G.c.category]
    sums = [func.sum(_G.c[name]).label(name) for name in tables.GUARD_SUMS]
    rows = await _fetch(db, select(*group, *sums).where(*_where(_G, w, by=None)).group_by(*group))
    categories: dict[tuple[str, str], list[int]] = {}
    series: dict[datetime, dict[str, int]] = {}
    for row in rows:
        acc = categories.setdefault((row["side"], row["category"]), [0, 0, 0])
        for i, name in enumerate(tables.GUARD_SUMS):
            acc[i] += int(row[name])
        point = series.setdefault(row["bucket"], {})
        point[row["category"]] = point.get(row["category"], 0) + int(row["requests"])
    return {
        "object": "insights.guard",
        "window": w.to_json(),
        "requests": requests,
        "categories": [
            {"side": side, "category": category, "requests": acc[0], "findings": acc[1], "blocked": acc[2],
             "share": metrics.ratio(acc[0], requests)}
            for (side, category), acc in sorted(categories.items())
        ],
        "series": [{"bucket": b.isoformat(), "categories": dict(sorted(series[b].items()))} for b in sorted(series)],
    }  # fmt: skip


async def experiments(db: Database, w: Window) -> dict[str, Any]:
    """Per experiment arm (``<experiment id>:<variant>``, from the roll-ups' arm dimension):
    requests, error rate, p95 latency, tokens and cost, grouped by experiment."""
    per = await totals(db, w, "arm")
    data = []
    for arm in sorted(a for a in per if a):
        experiment_id, _, variant = arm.rpartition(":")
        s = metrics.summary(per[arm])
        data.append({
            "experiment_id": experiment_id, "variant": variant, "arm": arm, "requests": s["requests"],
            "errors": s["outcomes"]["error"], "error_rate": s["error_rate"], "p95_latency_ms": s["latency_ms"]["p95"],
            "tokens": s["tokens"]["total"], "cost_usd": s["cost_usd"],
        })  # fmt: skip
    return {"object": "insights.experiments", "window": w.to_json(), "data": data}
