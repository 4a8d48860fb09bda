"""Ratio metrics: the delta-method variance equals the variance of the linearised units."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.stats.errors import StatsError
from bastion.stats.frequentist import welch_test
from bastion.stats.ratio import RatioSums, ratio_arm


def _sums(m: np.ndarray, d: np.ndarray) -> RatioSums:
    return RatioSums(
        n=len(m),
        numerator_sum=float(m.sum()),
        numerator_sum_squares=float((m**2).sum()),
        denominator_sum=float(d.sum()),
        denominator_sum_squares=float((d**2).sum()),
        sum_products=float((m * d).sum()),
    )


def test_ratio_variance_is_the_linearisation() -> None:
    rng = np.random.default_rng(11)
    d = rng.poisson(3, size=5000).astype(float) + 1  # requests per user
    m = d * rng.gamma(2.0, 0.01, size=5000)  # cost, correlated with requests
    arm = ratio_arm(_sums(m, d))
    ratio = m.sum() / d.sum()
    linearised = (m - ratio * d) / d.mean()
    assert arm.mean == pytest.approx(ratio)
    assert arm.variance == pytest.approx(np.var(linearised, ddof=1), rel=1e-9)


def test_ratio_standard_error_matches_the_bootstrap() -> None:
    rng = np.random.default_rng(12)
    d = rng.integers(1, 6, size=2000).astype(float)
    m = rng.binomial(d.astype(int), 0.7).astype(float)  # successes per request
    arm = ratio_arm(_sums(m, d))
    idx = rng.integers(0, len(m), size=(2000, len(m)))
    boot = m[idx].sum(axis=1) / d[idx].sum(axis=1)
    assert arm.standard_error == pytest.approx(boot.std(ddof=1), rel=0.05)


def test_ratio_arms_go_through_the_usual_tests() -> None:
    rng = np.random.default_rng(13)
    d_a, d_b = rng.integers(1, 5, 1000).astype(float), rng.integers(1, 5, 1000).astype(float)
    m_a, m_b = d_a * rng.normal(1.0, 0.2, 1000), d_b * rng.normal(1.1, 0.2, 1000)
    result = welch_test(ratio_arm(_sums(m_a, d_a)), ratio_arm(_sums(m_b, d_b)), relative=True)
    assert result.ci[0] > 0  # a 10% lift in cost per request, detected
    assert result.expected == pytest.approx((m_b.sum() / d_b.sum()) / (m_a.sum() / d_a.sum()) - 1)


def test_ratio_with_zero_denominator_is_refused() -> None:
    with pytest.raises(StatsError):
        ratio_arm(RatioSums(10, 1.0, 1.0, 0.0, 0.0, 0.0))
