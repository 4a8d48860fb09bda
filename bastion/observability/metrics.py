"""Prometheus metrics. One registry per process; with several workers each worker exposes its own
(scrape them through the load balancer or with ``PROMETHEUS_MULTIPROC_DIR`` semantics later)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

REQUESTS = Counter(
    "bastion_requests",
    "Requests answered, by endpoint, model alias, deployment and HTTP status.",
    ("endpoint", "model", "deployment", "status"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "bastion_request_latency_seconds",
    "Whole request latency as the client sees it (to the last byte).",
    ("endpoint", "model"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
OVERHEAD = Histogram(
    "bastion_overhead_seconds",
    "Time spent in Bastion itself, excluding upstream waits and retry back-off.",
    ("endpoint",),
    buckets=_OVERHEAD_BUCKETS,
    registry=REGISTRY,
)
TTFT = Histogram(
    "bastion_time_to_first_token_seconds",
    "Time from request arrival to the first streamed chunk sent.",
    ("model",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "bastion_tokens",
    "Tokens processed, by model alias and direction (input/output).",
    ("model", "direction"),
    registry=REGISTRY,
)
RETRIES = Counter(
    "bastion_upstream_retries",
    "Upstream attempts retried, by deployment and reason.",
    ("deployment", "reason"),
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "bastion_fallbacks",
    "Requests moved to a fallback model alias.",
    ("from_model", "to_model"),
    registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "bastion_circuit_state",
    "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
    ("deployment",),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "bastion_upstream_in_flight",
    "Upstream calls in progress per deployment.",
    ("deployment",),
    registry=REGISTRY,
)
LOCAL_QUEUE = Gauge(
    "bastion_local_queue_depth",
    "Requests waiting for the embedded model.",
    registry=REGISTRY,
)

# -- ledger (bastion.ledger.writer) ----------------------------------------------------------------
LEDGER_QUEUE_DEPTH = Gauge(
    "bastion_ledger_queue_depth",
    "Ledger records waiting in memory for the background writer.",
    registry=REGISTRY,
)
LEDGER_JOURNAL_LAG = Gauge(
    "bastion_ledger_journal_lag_bytes",
    "Bytes of this process's ledger journal not yet committed to the database.",
    registry=REGISTRY,
)
LEDGER_WRITTEN = Counter(
    "bastion_ledger_records_written",
    "Ledger records committed to the database (replays included).",
    registry=REGISTRY,
)
LEDGER_WRITE_ERRORS = Counter(
    "bastion_ledger_write_errors",
    "Ledger write failures, by kind (database, data, journal, encode, corrupt_line).",
    ("kind",),
    registry=REGISTRY,
)
LEDGER_OVERFLOWS = Counter(
    "bastion_ledger_queue_overflows",
    "Ledger records that found the queue full (they are read back from the journal).",
    registry=REGISTRY,
)


# -- guard (bastion.gateway.stages.guard_in / guard_out) ------------------------------------------
GUARD_VERDICTS = Counter(
    "bastion_guard_verdicts",
    "Guard scanner verdicts, by direction (input/output), scanner and action (allow, flag, redact, block).",
    ("direction", "scanner", "action"),
    registry=REGISTRY,
)


# -- the HTTP server (bastion.server) ------------------------------------------------------------
HTTP_REFUSED = Counter(
    "bastion_http_refused",
    "Requests refused or connections closed by the server's limits, by reason "
    "(over_capacity, header_timeout, body_timeout).",
    ("reason",),
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
