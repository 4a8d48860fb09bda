"""Response-cache metrics, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import Counter

from bastion.observability.metrics import REGISTRY

CACHE_REQUESTS = Counter(
    "bastion_cache_requests",
    "Chat requests by what the response cache did (hit, semantic_hit, miss, bypass), per model alias.",
    ("model", "outcome"),
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "bastion_cache_lookups",
    "Cache lookups by kind (exact, semantic) and result (hit, miss).",
    ("kind", "result"),
    registry=REGISTRY,
)
CACHE_BYPASSES = Counter(
    "bastion_cache_bypasses",
    "Requests the cache left alone, by reason (no-store, no-cache, random-sampling, opted-out, ...).",
    ("reason",),
    registry=REGISTRY,
)
CACHE_STORED = Counter(
    "bastion_cache_stored",
    "Answers stored, by kind (exact; semantic: also indexed for similar requests).",
    ("kind",),
    registry=REGISTRY,
)
CACHE_ERRORS = Counter(
    "bastion_cache_errors",
    "Cache operations that failed (counted as misses, never as request errors), by store and operation.",
    ("store", "operation"),
    registry=REGISTRY,
)
SEMANTIC_REJECTIONS = Counter(
    "bastion_cache_semantic_rejections",
    "Stored requests above the similarity threshold that the polarity check turned down.",
    registry=REGISTRY,
)
