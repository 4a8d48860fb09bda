"""Spend metrics, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import Counter

from bastion.observability.metrics import REGISTRY

UNPRICED = Counter(
    "bastion_unpriced_interactions",
    "Interactions with a model that has no price (costed at 0), by upstream model.",
    ("model",),
    registry=REGISTRY,
)
COST_USD = Counter(
    "bastion_cost_usd",
    "Cost of interactions in USD, by model alias.",
    ("model",),
    registry=REGISTRY,
)
BUDGET_REJECTIONS = Counter(
    "bastion_budget_rejections",
    "Requests refused because a budget would be exceeded, by budget (request, daily, monthly) and scope.",
    ("budget", "scope"),
    registry=REGISTRY,
)
SEED_FAILURES = Counter(
    "bastion_budget_seed_failures",
    "Budget windows whose spend could not be read from the ledger (seeded at 0).",
    registry=REGISTRY,
)
