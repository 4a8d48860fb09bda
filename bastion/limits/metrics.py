"""Rate-limit metrics, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import Counter

from bastion.observability.metrics import REGISTRY

RATE_REJECTIONS = Counter(
    "bastion_rate_limit_rejections",
    "Requests refused by a rate limit, by limit (requests, tokens) and scope (key, user, tenant).",
    ("limit", "scope"),
    registry=REGISTRY,
)
REDIS_FAILURES = Counter(
    "bastion_limits_redis_failures",
    "Redis calls of the limiter that failed (connection, timeout or script error).",
    registry=REGISTRY,
)
FALLBACK_ADMISSIONS = Counter(
    "bastion_limits_fallback_admissions",
    "Admissions decided without Redis because it was unreachable, by configured behaviour (open, closed).",
    ("mode",),
    registry=REGISTRY,
)
SETTLEMENTS_DROPPED = Counter(
    "bastion_limits_settlements_dropped",
    "Settlements given up after Redis stayed unreachable longer than a reservation lives.",
    registry=REGISTRY,
)
