"""Sequential testing: GrowthBook's reference values and the A/A peeking simulation."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.stats.frequentist import t_two_sided_p
from bastion.stats.sequential import sequential_halfwidth, sequential_p_value, sequential_test
from bastion.stats.summary import ArmStats


def test_matches_growthbook_reference_values() -> None:
    # gbstats tests/frequentist/test_tests.py, TestSequentialTTest.
    b = ArmStats.from_sums(3461, 2422.7, 134698.29)
    means = sequential_test(ArmStats.from_sums(3000, 1396.87, 52377.9767), b, relative=True, tuning=1000)
    assert round(means.expected, 5) == 0.50336
    assert tuple(round(x, 5) for x in means.ci) == (-0.55844, 1.56516)
    assert means.p_value == 1
    props = sequential_test(ArmStats.from_proportion(3000, 1396), ArmStats.from_proportion(3461, 2422), relative=True)
    assert round(props.expected, 5) == 0.50386
    assert tuple(round(x, 5) for x in props.ci) == (0.40098, 0.60675)
    assert round(props.p_value, 5) == 0.0


def test_interval_is_wider_than_the_fixed_horizon_one() -> None:
    se = 0.01
    for n in (100, 1000, 10_000, 100_000):
        assert sequential_halfwidth(se, n, 0.05) > 1.96 * se


def test_p_value_below_alpha_exactly_when_the_interval_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    estimate = rng.normal(0, 0.03, 5000)
    se = rng.uniform(0.005, 0.02, 5000)
    n = rng.integers(200, 50_000, 5000)
    p = sequential_p_value(estimate, se, n, 0.05)
    excludes = np.abs(estimate) > sequential_halfwidth(se, n, 0.05)
    assert ((p < 0.05) == excludes).all()


def test_a_a_test_peeked_20_times() -> None:
    """Naive Welch p-values checked 20 times reject about 25% of A/A tests; sequential ones <= 5%."""
    rng = np.random.default_rng(20)
    sims, peeks, per_peek, rate = 4000, 20, 250, 0.1
    conversions = rng.binomial(per_peek, rate, size=(2, sims, peeks)).cumsum(axis=2)
    n = per_peek * np.arange(1, peeks + 1)
    p = conversions / n
    var = p * (1 - p)
    diff = p[1] - p[0]
    se = np.sqrt((var[0] + var[1]) / n)  # every arm has conversions at every look (250 units at 10%)
    dof = se**4 / ((var[0] / n) ** 2 / (n - 1) + (var[1] / n) ** 2 / (n - 1))
    naive = (t_two_sided_p(diff / se, dof) < 0.05).any(axis=1).mean()
    sequential = (sequential_p_value(diff, se, 2 * n, 0.05) < 0.05).any(axis=1).mean()
    print(f"A/A, 20 looks: naive false-positive rate {naive:.3f}, sequential {sequential:.3f}")
    assert 0.20 <= naive <= 0.30, naive
    assert sequential <= 0.05, sequential


def test_tuning_moves_where_the_interval_is_tightest() -> None:
    small = sequential_halfwidth(0.01, 1000, 0.05, tuning=1000)
    large = sequential_halfwidth(0.01, 1000, 0.05, tuning=100_000)
    assert small < large
    assert sequential_test(ArmStats(500, 1.0, 1.0), ArmStats(500, 1.2, 1.0)).p_value == pytest.approx(
        float(sequential_p_value(0.2, np.sqrt(2 / 500), 1000, 0.05))
    )
