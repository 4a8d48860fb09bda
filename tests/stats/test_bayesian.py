"""Bayesian engine: GrowthBook's reference values, risk and exact Beta-Binomial by integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from bastion.stats.bayesian import GaussianPrior, bayesian_test, beta_binomial_chance_to_win, normal_risk
from bastion.stats.summary import ArmStats


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 5) for v in values)


def test_binomial_matches_growthbook() -> None:
    # gbstats tests/bayesian/test_tests.py, TestBinom.
    result = bayesian_test(ArmStats.from_proportion(100, 49), ArmStats.from_proportion(100, 51))
    assert round(result.expected, 5) == 0.04082
    assert _rounded(result.ci) == (-0.24779, 0.32943)
    assert round(result.standard_deviation, 5) == 0.14725
    assert round(result.chance_to_win, 5) == 0.60918
    assert _rounded(result.risk) == (0.0814, 0.04058)


def test_gaussian_matches_growthbook() -> None:
    a = ArmStats.from_sums(10, 100, 1002.25)
    b = ArmStats.from_sums(10, 105, 1111.5)
    flat = bayesian_test(a, b)
    assert round(flat.expected, 5) == 0.05
    assert _rounded(flat.ci) == (-0.02, 0.12)
    assert round(flat.chance_to_win, 5) == 0.91923
    assert _rounded(flat.risk) == (0.05131, 0.00131)
    informative = bayesian_test(a, b, prior=GaussianPrior(mean=0.1, variance=0.1, proper=True))
    assert round(informative.expected, 5) == 0.05063
    assert _rounded(informative.ci) == (-0.01893, 0.12019)
    assert round(informative.chance_to_win, 5) == 0.92315
    assert _rounded(informative.risk) == (0.05186, 0.00123)


@pytest.mark.parametrize(("mean", "sd"), [(0.05, 0.03), (-0.2, 0.1), (0.0, 1.0), (3.0, 0.5)])
def test_risk_is_the_expected_loss(mean: float, sd: float) -> None:
    dist = sps.norm(mean, sd)
    lo, hi = mean - 12 * sd, mean + 12 * sd
    control = integrate.quad(lambda x: max(x, 0.0) * dist.pdf(x), lo, hi, points=[0.0], limit=200)[0]
    treatment = integrate.quad(lambda x: max(-x, 0.0) * dist.pdf(x), lo, hi, points=[0.0], limit=200)[0]
    assert normal_risk(mean, sd) == pytest.approx((control, treatment), abs=1e-9)


def test_inverse_metrics_swap_chance_and_risk() -> None:
    a, b = ArmStats(500, 2.0, 1.0), ArmStats(500, 1.9, 1.0)
    higher = bayesian_test(a, b, relative=False)
    lower = bayesian_test(a, b, relative=False, inverse=True)
    assert lower.chance_to_win == pytest.approx(1 - higher.chance_to_win)
    assert lower.risk == pytest.approx(higher.risk[::-1])
    assert lower.chance_to_win > 0.9


@pytest.mark.parametrize(("x_a", "n_a", "x_b", "n_b"), [(10, 100, 15, 100), (49, 100, 51, 100), (0, 20, 2, 20)])
def test_beta_binomial_matches_numerical_integration(x_a: int, n_a: int, x_b: int, n_b: int) -> None:
    post_a = sps.beta(1 + x_a, 1 + n_a - x_a)
    post_b = sps.beta(1 + x_b, 1 + n_b - x_b)
    reference = integrate.quad(lambda p: post_a.pdf(p) * post_b.sf(p), 0, 1, limit=500)[0]
    assert beta_binomial_chance_to_win(x_a, n_a, x_b, n_b) == pytest.approx(reference, abs=1e-8)


def test_normal_approximation_agrees_with_exact_on_large_binomials() -> None:
    x_a, n_a, x_b, n_b = 1000, 10_000, 1080, 10_000
    approx = bayesian_test(ArmStats.from_proportion(n_a, x_a), ArmStats.from_proportion(n_b, x_b), relative=False)
    exact = beta_binomial_chance_to_win(x_a, n_a, x_b, n_b)
    assert approx.chance_to_win == pytest.approx(exact, abs=0.005)
    rng = np.random.default_rng(5)
    draws = rng.beta(1 + x_b, 1 + n_b - x_b, 400_000) > rng.beta(1 + x_a, 1 + n_a - x_a, 400_000)
    assert exact == pytest.approx(draws.mean(), abs=0.003)
