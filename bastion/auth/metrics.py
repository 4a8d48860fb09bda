"""Prometheus metrics of identity resolution. Only slow-path events are counted: a counter on
every cache hit would cost more than the hit itself."""

from __future__ import annotations

from prometheus_client import Counter

from bastion.observability.metrics import REGISTRY

CACHE_MISSES = Counter(
    "bastion_auth_cache_misses",
    "Credentials verified against the database (cache miss, stale epoch or expired entry), by method.",
    ("method",),
    registry=REGISTRY,
)
REFUSED = Counter(
    "bastion_auth_refused",
    "Requests refused by authentication, by reason.",
    ("reason",),
    registry=REGISTRY,
)
EPOCH_UNAVAILABLE = Counter(
    "bastion_auth_epoch_unavailable",
    "Failed reads or bumps of the shared auth epoch in Redis (caches are bypassed meanwhile).",
    ("operation",),
    registry=REGISTRY,
)
