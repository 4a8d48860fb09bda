"""Welch's t-test, proportion tests and Fisher's exact test against scipy and textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bastion.stats.errors import StatsError
from bastion.stats.frequentist import welch_dof, welch_test
from bastion.stats.proportions import chi_square_test, fisher_exact, two_proportion_z_test
from bastion.stats.summary import ArmStats


def _arm(values: np.ndarray) -> ArmStats:
    return ArmStats.from_sums(len(values), float(values.sum()), float((values**2).sum()))


@pytest.mark.parametrize("seed", range(5))
def test_welch_absolute_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(10, 2, size=40 + 10 * seed)
    b = rng.normal(10.8, 3.5, size=25 + 7 * seed)
    result = welch_test(_arm(a), _arm(b), relative=False, alpha=0.05)
    reference = sps.ttest_ind(b, a, equal_var=False)
    assert result.expected == pytest.approx(b.mean() - a.mean())
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    low, high = reference.confidence_interval(0.95)
    assert result.ci == pytest.approx((low, high), rel=1e-9)


def test_welch_satterthwaite_degrees_of_freedom_textbook() -> None:
    # s1^2 = 4, n1 = 10; s2^2 = 9, n2 = 20: ((0.4 + 0.45)^2) / (0.4^2 / 9 + 0.45^2 / 19)
    a, b = ArmStats(10, 0.0, 4.0), ArmStats(20, 0.0, 9.0)
    assert welch_dof(a, b) == pytest.approx(0.85**2 / (0.16 / 9 + 0.2025 / 19))


def test_welch_matches_growthbook_reference_values() -> None:
    # gbstats tests/frequentist/test_tests.py, TestTwoSidedTTest.
    a = ArmStats.from_sums(3407, 1396.87, 52377.9767)
    b = ArmStats.from_sums(3461, 2422.7, 134698.29)
    relative = welch_test(a, b, relative=True)
    assert round(relative.expected, 5) == 0.70732
    assert tuple(round(x, 5) for x in relative.ci) == (-0.03526, 1.44989)
    assert round(relative.standard_error, 5) == 0.37879
    assert round(relative.p_value, 5) == 0.06191
    absolute = welch_test(a, b, relative=False)
    assert tuple(round(x, 5) for x in absolute.ci) == (0.04538, 0.53462)
    assert round(absolute.p_value, 5) == 0.02016
    binom = welch_test(ArmStats.from_proportion(28, 14), ArmStats.from_proportion(30, 16), relative=True)
    assert tuple(round(x, 5) for x in binom.ci) == (-0.47767, 0.61101)
    assert round(binom.p_value, 5) == 0.80707


def test_relative_variance_is_the_delta_method() -> None:
    # Var((b - a) / a) ~ var_b / (n_b a^2) + var_a b^2 / (n_a a^4), checked by simulation of the ratio.
    a, b = ArmStats(2000, 5.0, 4.0), ArmStats(2000, 5.5, 6.0)
    rng = np.random.default_rng(3)
    mean_a = rng.normal(a.mean, math.sqrt(a.variance / a.n), 200_000)
    mean_b = rng.normal(b.mean, math.sqrt(b.variance / b.n), 200_000)
    simulated = np.var(mean_b / mean_a - 1)
    assert welch_test(a, b, relative=True).standard_error ** 2 == pytest.approx(simulated, rel=0.02)


def test_welch_rejects_arms_without_data() -> None:
    with pytest.raises(StatsError):
        welch_test(ArmStats(1, 1.0, 0.0), ArmStats(10, 1.0, 1.0))
    with pytest.raises(StatsError, match="control mean is 0"):
        welch_test(ArmStats(10, 0.0, 1.0), ArmStats(10, 1.0, 1.0), relative=True)


@pytest.mark.parametrize(("x_a", "n_a", "x_b", "n_b"), [(120, 1000, 150, 1000), (45, 300, 30, 320), (5, 50, 12, 48)])
def test_two_proportion_z_matches_chi_square_and_closed_form(x_a: int, n_a: int, x_b: int, n_b: int) -> None:
    result = two_proportion_z_test(x_a, n_a, x_b, n_b, pooled=True)
    table = [[x_a, n_a - x_a], [x_b, n_b - x_b]]
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert result.z**2 == pytest.approx(chi2)
    assert result.p_value == pytest.approx(p)
    ours = chi_square_test(table)
    assert ours == pytest.approx((chi2, p))
    yates = sps.chi2_contingency(table, correction=True)
    assert chi_square_test(table, correction=True) == pytest.approx((yates[0], yates[1]))
    p_a, p_b = x_a / n_a, x_b / n_b
    wald = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    unpooled = two_proportion_z_test(x_a, n_a, x_b, n_b, pooled=False)
    assert unpooled.z == pytest.approx((p_b - p_a) / wald)
    assert unpooled.ci == pytest.approx((p_b - p_a - 1.959963984540054 * wald, p_b - p_a + 1.959963984540054 * wald))


def test_chi_square_on_three_arms_matches_scipy() -> None:
    table = [[30, 970], [45, 955], [38, 962]]
    chi2, p, _, _ = sps.chi2_contingency(table)
    assert chi_square_test(table) == pytest.approx((chi2, p))


def test_fisher_lady_tasting_tea() -> None:
    # Fisher (1935): 3 of 4 cups right each way, two-sided p = 34/70.
    odds, p = fisher_exact(3, 1, 1, 3)
    assert odds == 9
    assert p == pytest.approx(34 / 70)


def test_fisher_matches_scipy_on_small_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        a, b, c, d = (int(x) for x in rng.integers(0, 15, size=4))
        ours = fisher_exact(a, b, c, d)[1]
        assert ours == pytest.approx(sps.fisher_exact([[a, b], [c, d]])[1], rel=1e-9, abs=1e-12), (a, b, c, d)
