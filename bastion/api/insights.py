"""Insights API, served from the roll-up tables only (docs/INSIGHTS.md). Every route needs
``usage:read`` (viewer, developer, admin) and answers for the caller's tenant only.

GET  /api/v1/insights/summary       totals, rates, latency percentiles and seed 004's metrics
GET  /api/v1/insights/timeseries    the same per bucket
GET  /api/v1/insights/top           top-N models, keys, prompts or arms by cost, tokens or requests
GET  /api/v1/insights/metrics       seed 004's metrics per model, prompt, key or experiment arm
GET  /api/v1/insights/guard         guard findings per category and side, and over time
GET  /api/v1/insights/drift         semantic drift of the window against a baseline
GET  /api/v1/insights/experiments   per experiment arm: requests, error rate, p95 latency, cost
GET  /api/v1/insights/alerts        every alert of the tenant, firing or not, judged now
GET  /api/v1/insights/stream        live events (roll-up runs, alert changes): insights_stream.py
POST /api/metrics/ingest            external interactions into the ledger (``models:call``)

Common query parameters: ``from`` / ``to`` (ISO 8601, default the last 24 hours), ``grain``
(``5m``, ``1h``, ``1d``; default by the window's length), ``model``, ``key_id``, ``prompt_id``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.admin_ledger import _int, _text, _time
from bastion.api.common import authenticate_request, gateway
from bastion.api.http import json_response, read_json
from bastion.api.insights_stream import stream_route
from bastion.auth.principal import Permission, Principal
from bastion.errors import InvalidRequest, NotFound
from bastion.insights import ingest, query
from bastion.insights.alerts import tenant_alerts
from bastion.insights.drift import drift_report
from bastion.insights.service import InsightsService
from bastion.ledger.record import content_mode

PREFIX = "/api/v1/insights"
INGEST_PATH = "/api/metrics/ingest"
_MAX_INGEST_BYTES = 8 * 1024 * 1024


def _service(request: Request) -> InsightsService:
    service = gateway(request).services.insights
    if service is None:
        raise NotFound("Insights are switched off on this gateway (insights.enabled).")
    return service


async def _window(request: Request) -> tuple[Principal, query.Window]:
    principal = await authenticate_request(request, Permission.READ_USAGE)
    service = _service(request)
    window = query.make_window(
        principal.tenant_id,
        _time(request, "from"),
        _time(request, "to"),
        grain=_text(request, "grain", 2),
        retention=service.settings.retention,
        model=_text(request, "model"),
        key_id=_text(request, "key_id", 64),
        prompt_id=_text(request, "prompt_id", 128),
    )
    return principal, window


async def summary_route(request: Request) -> Response:
    _, window = await _window(request)
    return json_response(await query.summary(gateway(request).db, window))


async def timeseries_route(request: Request) -> Response:
    _, window = await _window(request)
    return json_response(await query.timeseries(gateway(request).db, window))


async def top_route(request: Request) -> Response:
    _, window = await _window(request)
    by = _text(request, "by", 16) or "model"
    order = _text(request, "order", 16) or "cost"
    limit = _int(request, "limit", 1, 100) or 10
    return json_response(await query.top(gateway(request).db, window, by, order, limit))


async def metrics_route(request: Request) -> Response:
    _, window = await _window(request)
    return json_response(await query.breakdown(gateway(request).db, window, _text(request, "by", 16) or "model"))


async def guard_route(request: Request) -> Response:
    _, window = await _window(request)
    return json_response(await query.guard_panel(gateway(request).db, window))


async def drift_route(request: Request) -> Response:
    principal, window = await _window(request)
    service = _service(request)
    start, end = _time(request, "baseline_from"), _time(request, "baseline_to")
    if (start is None) != (end is None):
        raise InvalidRequest(
            "Invalid request: give both baseline_from and baseline_to, or neither.", param="baseline_from"
        )
    report = await drift_report(
        gateway(request).db,
        service.settings,
        principal.tenant_id,
        window.since,
        window.until,
        baseline=(start, end) if start is not None and end is not None else None,
        model=window.model,
        prompt_id=window.prompt_id,
        embedding_model=_text(request, "embedding_model", 128),
    )
    return json_response({"object": "insights.drift", **report})


async def experiments_route(request: Request) -> Response:
    _, window = await _window(request)
    return json_response(await query.experiments(gateway(request).db, window))


async def alerts_route(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.READ_USAGE)
    service = _service(request)
    return json_response(await tenant_alerts(gateway(request).db, service.settings, principal.tenant_id, _now()))


def _now() -> datetime:
    return datetime.now(UTC)


async def ingest_route(request: Request) -> Response:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    gw = gateway(request)
    service = _service(request)
    settings = service.settings.ingest
    if not settings.enabled:
        raise NotFound("Log ingestion is switched off on this gateway (insights.ingest.enabled).")
    writer = gw.services.ledger
    if writer is None:
        raise InvalidRequest("Log ingestion needs the ledger, which is switched off (ledger.enabled).")
    service.ingest_limiter.admit(principal.key_id or principal.user_id or principal.tenant_id)
    items = ingest.parse(await read_json(request, _MAX_INGEST_BYTES), settings.max_records)
    mode = content_mode(principal, gw.settings.ledger.default_mode)
    now = time.time()
    records = [
        ingest.to_record(
            item, tenant_id=principal.tenant_id, key_id=principal.key_id, user_id=principal.user_id, mode=mode, now=now
        )
        for item in items
    ]
    for record in records:
        writer.submit(record)
    return json_response(
        {"object": "ingest.result", "accepted": len(records), "ids": [r["id"] for r in records]}, status=202
    )


routes = [
    Route(f"{PREFIX}/summary", summary_route, methods=["GET"]),
    Route(f"{PREFIX}/timeseries", timeseries_route, methods=["GET"]),
    Route(f"{PREFIX}/top", top_route, methods=["GET"]),
    Route(f"{PREFIX}/metrics", metrics_route, methods=["GET"]),
    Route(f"{PREFIX}/guard", guard_route, methods=["GET"]),
    Route(f"{PREFIX}/drift", drift_route, methods=["GET"]),
    Route(f"{PREFIX}/experiments", experiments_route, methods=["GET"]),
    Route(f"{PREFIX}/alerts", alerts_route, methods=["GET"]),
    Route(f"{PREFIX}/stream", stream_route, methods=["GET"]),
    Route(INGEST_PATH, ingest_route, methods=["POST"]),
]
