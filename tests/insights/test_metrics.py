"""Seed 004's metrics and the histogram percentiles, computed by hand: empty windows, zero tokens,
all-blocked, retries; fragility; the alerts' thresholds."""

from __future__ import annotations

import pytest

from bastion.config.insights_settings import InsightsSettings
from bastion.insights import metrics
from bastion.insights.alerts import Observed, evaluate
from bastion.insights.histogram import BOUNDS_MS, BUCKETS, bucket_of, percentile
from bastion.insights.tables import LATENCY_COLUMNS, TTFT_COLUMNS


def row(requests: int, prompt: int, completion: int, **extra: int) -> dict[str, int]:
    values = {
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": 0,
        "retry_tokens": 0,
        "cost_nusd": 0,
        "latency_us_sum": 0,
        "latency_max_us": 0,
        "ttft_requests": 0,
        "ttft_us_sum": 0,
        "ttft_max_us": 0,
        "cache_hits": 0,
        "flagged": 0,
        "retries": 0,
    }
    values.update({name: 0 for name in (*LATENCY_COLUMNS, *TTFT_COLUMNS)})
    values.update(extra)
    return values


def totals(**outcomes: dict[str, int]) -> metrics.Totals:
    t = metrics.Totals()
    for outcome, values in outcomes.items():
        t.add(outcome, values)
    return t


def test_an_empty_window_has_no_ratios() -> None:
    s = metrics.summary(metrics.Totals())
    assert s["requests"] == 0
    assert s["error_rate"] is None and s["block_rate"] is None
    assert s["latency_ms"] == {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    assert s["metrics"]["token_efficiency"] is None
    assert s["metrics"]["cognitive_waste"] is None
    assert s["metrics"]["cognitive_waste_ratio"] is None
    assert s["metrics"]["adversarial_stress"] is None


def test_requests_without_tokens() -> None:
    t = totals(ok=row(4, 0, 0), error=row(1, 0, 0))
    s = metrics.summary(t)
    assert s["error_rate"] == 0.2
    assert s["metrics"]["token_efficiency"] is None  # nothing spent
    assert s["metrics"]["cognitive_waste"] is None  # nothing useful
    assert s["metrics"]["wasted_tokens"] == 0


def test_hand_computed_efficiency_and_waste() -> None:
    # ok: 100 prompt + 50 completion; error: 40 prompt; truncated: 30 + 20; 2 retries of a 10-token prompt.
    t = totals(ok=row(2, 100, 50, retry_tokens=20), error=row(1, 40, 0), truncated=row(1, 30, 20))
    spent = 100 + 50 + 40 + 30 + 20 + 20
    wasted = 40 + (30 + 20) + 20
    assert metrics.token_efficiency(t) == round(50 / spent, 6)
    assert metrics.cognitive_waste(t) == round(wasted / 50, 6)
    assert metrics.cognitive_waste_ratio(t) == round(wasted / spent, 6)


def test_all_blocked() -> None:
    t = totals(blocked=row(5, 120, 0, flagged=5))
    s = metrics.summary(t)
    assert s["block_rate"] == 1.0
    assert s["metrics"]["token_efficiency"] == 0.0
    assert s["metrics"]["cognitive_waste"] is None  # no useful token: unbounded
    assert s["metrics"]["cognitive_waste_ratio"] == 1.0
    assert s["metrics"]["adversarial_stress"] == 1.0
    firing = evaluate(Observed(cognitive_waste=None, wasted_tokens=120, adversarial_stress=1.0), InsightsSettings())
    assert firing[("cognitive_waste", "critical")] and firing[("adversarial_stress", "critical")]


def test_stress_per_category() -> None:
    t = totals(ok=row(8, 0, 0, flagged=3), blocked=row(2, 0, 0, flagged=2))
    assert metrics.adversarial_stress(t) == 0.5
    assert metrics.stress_by_category(t, {"pii": 1, "injection": 4}) == {"injection": 0.4, "pii": 0.1}


def test_percentiles_from_a_histogram() -> None:
    counts = [0] * BUCKETS
    counts[bucket_of(40.0)] = 10  # (25, 50]
    counts[bucket_of(80.0)] = 10  # (50, 100]
    assert percentile(counts, 0.5, 90.0) == 50.0  # rank 10: the top of the first bucket
    assert percentile(counts, 0.95, 90.0) == 50.0 + (90.0 - 50.0) * 9 / 10  # capped at the largest value
    assert percentile([0] * BUCKETS, 0.5) is None
    overflow = [0] * BUCKETS
    overflow[-1] = 2
    assert percentile(overflow, 1.0, 200_000.0) == 200_000.0
    assert bucket_of(BOUNDS_MS[0]) == 0 and bucket_of(BOUNDS_MS[0] + 0.001) == 1


def test_cost_and_latency_figures() -> None:
    counts = {name: 0 for name in LATENCY_COLUMNS}
    counts[LATENCY_COLUMNS[bucket_of(100.0)]] = 2
    t = totals(ok=row(2, 10, 10, cost_nusd=1_500_000_000, latency_us_sum=200_000, latency_max_us=100_000, **counts))
    s = metrics.summary(t)
    assert s["cost_usd"] == 1.5
    assert s["latency_ms"]["mean"] == 100.0 and s["latency_ms"]["max"] == 100.0
    assert s["latency_ms"]["p50"] == 75.0  # rank 1 of 2 in (50, 100]


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([], None),
        ([["refused"]], None),
        ([["refused", "refused", "refused"]], 0.0),
        ([["refused", "leaked", "refused", "leaked"]], 0.5),
        ([["a", "a", "b"], ["x", "x"]], round((1 / 3 + 0) / 2, 6)),
    ],
)
def test_fragility(groups: list[list[str]], expected: float | None) -> None:
    assert metrics.fragility(groups) == expected


def test_alert_thresholds_are_the_seeds() -> None:
    settings = InsightsSettings()
    calm = evaluate(Observed(cognitive_waste=2.5, error_rate=0.01, p95_latency_ms=2000.0), settings)
    assert not any(calm.values())
    busy = evaluate(
        Observed(cognitive_waste=2.6, error_rate=0.051, p95_latency_ms=5001.0, sessions_last_hour=1001),
        settings,
    )
    assert busy[("cognitive_waste", "critical")]
    assert busy[("error_rate", "warning")] and busy[("error_rate", "critical")]
    assert busy[("response_time", "warning")] and busy[("response_time", "critical")]
    assert busy[("session_count", "warning")] and not busy[("session_count", "critical")]
    quota = InsightsSettings.model_validate({"alerts": {"token_quota_per_day": 1000}})
    near = evaluate(Observed(tokens_today=900), quota)
    assert near[("token_quota", "warning")] and not near[("token_quota", "critical")]
    assert evaluate(Observed(drift=0.31), settings)[("semantic_drift", "critical")]
    assert not evaluate(Observed(drift=0.2, drift_threshold=0.25), settings)[("semantic_drift", "critical")]
