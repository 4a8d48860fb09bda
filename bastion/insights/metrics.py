"""Seed 004's metrics over a window's roll-up totals. Every formula is in docs/INSIGHTS.md; all
inputs are integers summed by the database, so a metric is the same on SQLite and PostgreSQL.

Units: ratios are plain numbers in [0, 1]; ``cognitive_waste`` is tokens wasted per useful output
token; times are milliseconds; cost is US dollars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bastion.insights.histogram import BUCKETS, percentile

_DIGITS = 6


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` rounded to 6 digits; None for an empty denominator."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, _DIGITS)


@dataclass(slots=True)
class Totals:
    """Summed roll-up columns of one window (and slice), per outcome."""

    requests: dict[str, int] = field(default_factory=dict)
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    completion_tokens: dict[str, int] = field(default_factory=dict)
    cached_tokens: int = 0
    retry_tokens: int = 0
    cost_nusd: int = 0
    latency_us_sum: int = 0
    latency_max_us: int = 0
    ttft_requests: int = 0
    ttft_us_sum: int = 0
    ttft_max_us: int = 0
    cache_hits: int = 0
    flagged: int = 0
    retries: int = 0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    ttft_histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, outcome: str, row: Mapping[str, Any]) -> None:
        """Add one (summed) roll-up row of ``outcome``."""
        self.requests[outcome] = self.requests.get(outcome, 0) + int(row["requests"] or 0)
        self.prompt_tokens[outcome] = self.prompt_tokens.get(outcome, 0) + int(row["prompt_tokens"] or 0)
        self.completion_tokens[outcome] = self.completion_tokens.get(outcome, 0) + int(row["completion_tokens"] or 0)
        for name in ("cached_tokens", "retry_tokens", "cost_nusd", "latency_us_sum", "ttft_requests", "ttft_us_sum"):
            setattr(self, name, getattr(self, name) + int(row[name] or 0))
        for name in ("cache_hits", "flagged", "retries"):
            setattr(self, name, getattr(self, name) + int(row[name] or 0))
        self.latency_max_us = max(self.latency_max_us, int(row["latency_max_us"] or 0))
        self.ttft_max_us = max(self.ttft_max_us, int(row["ttft_max_us"] or 0))
        for i in range(BUCKETS):
            self.latency_histogram[i] += int(row[f"lat_{i:02d}"] or 0)
            self.ttft_histogram[i] += int(row[f"ttft_{i:02d}"] or 0)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def tokens(self, outcome: str | None = None) -> int:
        """Prompt plus completion tokens (of one outcome, or of all)."""
        if outcome is not None:
            return self.prompt_tokens.get(outcome, 0) + self.completion_tokens.get(outcome, 0)
        return sum(self.prompt_tokens.values()) + sum(self.completion_tokens.values())


def token_efficiency(t: Totals) -> float | None:
    """Useful output tokens (completion tokens of ``ok`` answers) over every token spent (prompt and
    completion tokens of all requests, plus the prompt tokens re-sent by retries)."""
    return ratio(t.completion_tokens.get("ok", 0), t.tokens() + t.retry_tokens)


def wasted_tokens(t: Totals) -> int:
    """Tokens of ``error``, ``blocked`` and ``truncated`` requests, plus those re-sent by retries."""
    return t.tokens("error") + t.tokens("blocked") + t.tokens("truncated") + t.retry_tokens


def cognitive_waste(t: Totals) -> float | None:
    """Wasted tokens per useful output token (seed 004's alert: above 2.5). None when there is no
    useful token (then ``cognitive_waste_ratio`` says how much was wasted)."""
    return ratio(wasted_tokens(t), t.completion_tokens.get("ok", 0))


def cognitive_waste_ratio(t: Totals) -> float | None:
    """Wasted tokens over every token spent, in [0, 1]."""
    return ratio(wasted_tokens(t), t.tokens() + t.retry_tokens)


def adversarial_stress(t: Totals) -> float | None:
    """Share of requests the guard flagged (any category, either side)."""
    return ratio(t.flagged, t.total_requests)


def stress_by_category(t: Totals, flagged_by_category: Mapping[str, int]) -> dict[str, float | None]:
    """Share of requests flagged per guard category."""
    return {category: ratio(count, t.total_requests) for category, count in sorted(flagged_by_category.items())}


def fragility(groups: Sequence[Sequence[str]]) -> float | None:
    """How much an outcome changes across semantically equivalent variants of one request: per
    group (the outcomes of one attack's variants, from red-team perturbation runs), the share of
    variants whose outcome differs from the group's most common one; the mean over groups with at
    least two variants. 0: every variant behaves alike; close to 1: nearly every variant differs."""
    scores = []
    for group in groups:
        if len(group) < 2:
            continue
        counts: dict[str, int] = {}
        for value in group:
            counts[value] = counts.get(value, 0) + 1
        scores.append(1.0 - max(counts.values()) / len(group))
    return round(sum(scores) / len(scores), _DIGITS) if scores else None


class RedTeamSource(Protocol):
    """Where red-team runs report their results for the insights (not built yet: until a source is
    given, attack success rate and fragility are null)."""

    async def attack_success(self, tenant_id: str, since: Any, until: Any) -> dict[str, float]:
        """Attack success rate per category over the runs in the window."""
        ...

    async def perturbation_groups(self, tenant_id: str, since: Any, until: Any) -> list[list[str]]:
        """Outcomes of each attack's perturbation variants (input to ``fragility``)."""
        ...


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


def summary(t: Totals) -> dict[str, Any]:
    """The figures of a window: counts, rates, tokens, cost, latency, and seed 004's metrics."""
    n = t.total_requests
    ttft = t.ttft_histogram
    return {
        "requests": n,
        "outcomes": {name: t.requests.get(name, 0) for name in ("ok", "error", "blocked", "truncated")},
        "error_rate": ratio(t.requests.get("error", 0), n),
        "block_rate": ratio(t.requests.get("blocked", 0), n),
        "tokens": {
            "prompt": sum(t.prompt_tokens.values()),
            "completion": sum(t.completion_tokens.values()),
            "cached": t.cached_tokens,
            "total": t.tokens(),
            "retried": t.retry_tokens,
        },
        "cost_usd": round(t.cost_nusd / 1e9, 9),
        "cache_hits": t.cache_hits,
        "flagged": t.flagged,
        "retries": t.retries,
        "latency_ms": {
            "mean": _ms(t.latency_us_sum / n) if n else None,
            "p50": percentile(t.latency_histogram, 0.5, t.latency_max_us / 1000.0),
            "p95": percentile(t.latency_histogram, 0.95, t.latency_max_us / 1000.0),
            "p99": percentile(t.latency_histogram, 0.99, t.latency_max_us / 1000.0),
            "max": _ms(t.latency_max_us) if n else None,
        },
        "ttft_ms": {
            "requests": t.ttft_requests,
            "mean": _ms(t.ttft_us_sum / t.ttft_requests) if t.ttft_requests else None,
            "p50": percentile(ttft, 0.5, t.ttft_max_us / 1000.0),
            "p95": percentile(ttft, 0.95, t.ttft_max_us / 1000.0),
            "p99": percentile(ttft, 0.99, t.ttft_max_us / 1000.0),
        },
        "metrics": {
            "token_efficiency": token_efficiency(t),
            "cognitive_waste": cognitive_waste(t),
            "cognitive_waste_ratio": cognitive_waste_ratio(t),
            "wasted_tokens": wasted_tokens(t),
            "useful_tokens": t.completion_tokens.get("ok", 0),
            "adversarial_stress": adversarial_stress(t),
        },
    }
