"""Insights in the OpenAPI document: the read routes over the roll-ups (``/api/v1/insights/...``)
and log ingestion (``POST /api/metrics/ingest``), with their answers (what
``bastion/insights/query.py``, ``drift.py`` and ``ingest.py`` build)."""

from __future__ import annotations

from typing import Any

from bastion.insights.ingest import IngestBody
from bastion.openapi.components import pydantic_components, ref
from bastion.openapi.operation import Operation, Param, json, path, query
from bastion.openapi.streams import event_schema

_TAG = "Insights"
_P = "/api/v1/insights"
_ACCESS = (
    "Needs `usage:read` (viewer or higher); the caller's tenant only. Served from the roll-ups (docs/INSIGHTS.md)."
)
_NUMBER = {"type": ["number", "null"]}
_WINDOW = {
    "type": "object",
    "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "grain": {"enum": ["5m", "1h", "1d"]}},
    "required": ["from", "to", "grain"],
}


def _object(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"object": {"const": kind}, **properties},
        "required": ["object", *required],
    }


_SUMMARY_FIELDS = {
    "requests": {"type": "integer"},
    "outcomes": {"type": "object", "additionalProperties": {"type": "integer"}},
    "error_rate": _NUMBER,
    "block_rate": _NUMBER,
    "tokens": {"type": "object", "additionalProperties": {"type": "integer"}},
    "cost_usd": {"type": "number"},
    "latency_ms": {"type": "object", "additionalProperties": _NUMBER},
    "ttft_ms": {"type": "object", "additionalProperties": _NUMBER},
    "metrics": {"type": "object"},
}


def insights_components() -> dict[str, Any]:
    array = {"type": "array", "items": {"type": "object"}}
    return {
        **pydantic_components([IngestBody], "Ingest"),
        "InsightsSummary": _object(
            "insights.summary", {"window": _WINDOW, **_SUMMARY_FIELDS}, ["window", "requests", "metrics"]
        ),
        "InsightsTimeseries": _object("insights.timeseries", {"window": _WINDOW, "data": array}, ["window", "data"]),
        "InsightsTop": _object(
            "insights.top",
            {"window": _WINDOW, "by": {"type": "string"}, "order": {"type": "string"}, "data": array},
            ["window", "by", "order", "data"],
        ),
        "InsightsBreakdown": _object(
            "insights.breakdown", {"window": _WINDOW, "by": {"type": "string"}, "data": array}, ["window", "by", "data"]
        ),
        "InsightsGuard": _object(
            "insights.guard",
            {"window": _WINDOW, "requests": {"type": "integer"}, "categories": array, "series": array},
            ["window", "requests", "categories", "series"],
        ),
        "InsightsDrift": _object(
            "insights.drift",
            {
                "drift": _NUMBER,
                "threshold": {"type": "number"},
                "drifted": {"type": "boolean"},
                "embedding_model": {"type": ["string", "null"]},
                "window_samples": {"type": "integer"},
                "baseline_samples": {"type": "integer"},
            },
            ["drift", "threshold", "drifted"],
        ),
        "InsightsExperiments": _object("insights.experiments", {"window": _WINDOW, "data": array}, ["window", "data"]),
        "InsightsAlerts": _object(
            "insights.alerts",
            {"evaluated_at": {"type": "string"}, "window_minutes": {"type": "integer"}, "data": array},
            ["evaluated_at", "data"],
        ),
        "InsightsStreamEvent": event_schema(
            {"type": "object"},
            {"enum": ["rollup", "alert"]},
            "`rollup`: a roll-up run changed the tenant's 5-minute buckets (`data.buckets`: their new totals); "
            "`alert`: an alert started or stopped firing. `id` grows with every event of the tenant.",
        ),
        "IngestResult": _object(
            "ingest.result",
            {"accepted": {"type": "integer"}, "ids": {"type": "array", "items": {"type": "string"}}},
            ["accepted", "ids"],
        ),
    }


_TIME = {"type": "string", "format": "date-time"}
WINDOW_PARAMS: tuple[Param, ...] = (
    query("from", _TIME, "Inclusive; default 24 hours before `to`. Widened to whole buckets."),
    query("to", _TIME, "Exclusive; default now."),
    query("grain", {"type": "string", "enum": ["5m", "1h", "1d"]}, "Default: 5m up to 6 h, 1h up to 8 days, else 1d."),
    query("model", {"type": "string", "maxLength": 256}),
    query("key_id", {"type": "string", "maxLength": 64}),
    query("prompt_id", {"type": "string", "maxLength": 128}),
)
_BY = {"type": "string", "enum": ["model", "key", "prompt", "arm"]}

INSIGHTS_OPERATIONS = [
    Operation(
        "get", f"{_P}/summary", "getInsightsSummary", "Requests, errors, blocks, tokens, cost and metrics of a window",
        _TAG, {200: json("InsightsSummary")}, params=WINDOW_PARAMS, errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/timeseries", "getInsightsTimeseries", "The window's figures per bucket", _TAG,
        {200: json("InsightsTimeseries")}, params=WINDOW_PARAMS, errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/top", "getInsightsTop", "Top models, keys, prompts or arms by cost, tokens or requests", _TAG,
        {200: json("InsightsTop")},
        params=(
            *WINDOW_PARAMS,
            query("by", _BY, "Default model."),
            query("order", {"type": "string", "enum": ["cost", "tokens", "requests"]}, "Default cost."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Default 10."),
        ),
        errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/metrics", "getInsightsMetrics", "Seed 004's metrics per model, prompt, key or experiment arm",
        _TAG, {200: json("InsightsBreakdown")}, params=(*WINDOW_PARAMS, query("by", _BY, "Default model.")),
        errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/guard", "getInsightsGuard", "Guard findings per category and side, and over time", _TAG,
        {200: json("InsightsGuard")}, params=WINDOW_PARAMS, errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/drift", "getInsightsDrift", "Semantic drift of the window against a baseline", _TAG,
        {200: json("InsightsDrift")},
        params=(
            *WINDOW_PARAMS,
            query("baseline_from", _TIME, "Default: `insights.drift.baseline_days` before the window."),
            query("baseline_to", _TIME, "Default: the window's start."),
            query("embedding_model", {"type": "string", "maxLength": 128}, "Default: the most recent one."),
        ),
        errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/experiments", "getInsightsExperiments", "Per experiment arm: requests, error rate, p95, cost",
        _TAG, {200: json("InsightsExperiments")}, params=WINDOW_PARAMS, errors=(400, 404), description=_ACCESS,
    ),
    Operation(
        "get", f"{_P}/alerts", "getInsightsAlerts", "Every insights alert of the tenant, firing or not", _TAG,
        {200: json("InsightsAlerts")}, errors=(404,),
        description="Needs `usage:read`; the caller's tenant only. Judged now over `insights.alerts.window_minutes`.",
    ),
    Operation(
        "get", f"{_P}/stream", "streamInsightsEvents", "Live insights events (server-sent events)", _TAG,
        {200: {"text/event-stream": ref("InsightsStreamEvent")}}, errors=(400, 404),
        description="Needs `usage:read`; the caller's tenant's events only, metadata only. Send `Last-Event-ID` "
        "to resume after that event (within `insights.stream.replay_events`); a `: keep-alive` comment comes "
        "every `insights.stream.keepalive_s` of silence; the stream ends after `insights.stream.max_connection_s`.",
    ),
    Operation(
        "post", "/api/metrics/ingest", "ingestInteractions", "Record interactions made outside the gateway", _TAG,
        {202: json("IngestResult")}, body="IngestIngestBody", errors=(400, 404, 413, 429),
        example={"records": [{"id": "app-1", "model": "gpt-4o-mini", "latency_ms": 812,
                              "usage": {"prompt_tokens": 31, "completion_tokens": 12}}]},
        description="Needs `models:call`. OpenAI-shaped records land in the ledger as external interactions "
        "(endpoint `external`); at most `insights.ingest.max_records` per request and "
        "`insights.ingest.per_minute` requests a minute per key.",
    ),
]  # fmt: skip

_HTML = {"text/html": {"type": "string"}}
DASHBOARD_OPERATIONS = [
    Operation(
        "get", "/dashboard", "getDashboard", "The insights dashboard (a static page)", _TAG, {200: _HTML},
        access="public",
        description="Asks for a key (viewer or higher) and reads the insights API with it. Strict "
        "Content-Security-Policy; docs/INSIGHTS.md, \"Dashboard\".",
    ),
    Operation(
        "get", "/dashboard/static/{name}", "getDashboardFile", "A file of the dashboard (script, style, Chart.js)",
        _TAG, {200: {"text/javascript": {"type": "string"}, "text/css": {"type": "string"}}},
        params=(path("name", {"type": "string", "enum": ["dashboard.js", "dashboard.css", "chart.umd.min.js"]}),),
        errors=(404,), access="public",
    ),
]  # fmt: skip
