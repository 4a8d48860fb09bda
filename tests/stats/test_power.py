"""Sample size, power and MDE: textbook values and Monte Carlo power of the matching test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bastion.stats.errors import StatsError
from bastion.stats.power import (
    PROPORTION_METHODS,
    mean_mde,
    mean_power,
    mean_sample_size,
    proportion_mde,
    proportion_power,
    proportion_sample_size,
    sequential_mde,
    sequential_sample_size,
)
from bastion.stats.sequential import sequential_p_value

Z = sps.norm.ppf(0.975)


def test_pooled_textbook_value() -> None:
    # 10% -> 12%, alpha 0.05 two-sided, power 0.8: the widely quoted 3,841 per arm.
    size = proportion_sample_size(0.10, 0.02)
    assert (size.per_arm, size.method) == (3841, "pooled")
    assert proportion_sample_size(0.10, 0.2, relative=True).per_arm == 3841


def test_methods_follow_their_closed_forms() -> None:
    p1, p2 = 0.10, 0.12
    zb = sps.norm.ppf(0.8)
    wald = (Z + zb) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / 0.02**2
    assert proportion_sample_size(p1, 0.02, method="unpooled").per_arm == math.ceil(wald)
    # Cohen's h = 0.2 needs 392 per group at alpha 0.05, power 0.8 (Cohen 1988, table 6.4.1: 2 (z_a + z_b)^2 / h^2).
    p_low = 0.5
    p_high = math.sin(math.asin(math.sqrt(p_low)) + 0.1) ** 2  # h = 2 asin sqrt(p2) - 2 asin sqrt(p1) = 0.2
    arcsine = proportion_sample_size(p_low, p_high - p_low, method="arcsine").per_arm
    assert arcsine == math.ceil(2 * (Z + zb) ** 2 / 0.2**2) == 393  # 392.4, which Cohen's table rounds to 392
    # Fleiss' continuity correction adds about 2 / |d| units to the pooled answer.
    pooled = proportion_sample_size(p1, 0.02).per_arm
    corrected = proportion_sample_size(p1, 0.02, method="continuity").per_arm
    assert abs(corrected - (pooled + 2 / 0.02)) <= 1


@pytest.mark.parametrize("method", PROPORTION_METHODS)
def test_power_function_inverts_the_sample_size(method: str) -> None:
    size = proportion_sample_size(0.05, 0.25, relative=True, method=method)  # type: ignore[arg-type]
    assert proportion_power(size.per_arm, 0.05, 0.0625, method=method) >= 0.8  # type: ignore[arg-type]
    assert proportion_power(size.per_arm - 1, 0.05, 0.0625, method=method) < 0.8  # type: ignore[arg-type]
    mde = proportion_mde(size.per_arm, 0.05, method=method)  # type: ignore[arg-type]
    assert mde == pytest.approx(0.0125, rel=2e-3)


def _rejections(method: str, n: int, p1: float, p2: float, sims: int, rng: np.random.Generator) -> float:
    x1, x2 = rng.binomial(n, p1, sims), rng.binomial(n, p2, sims)
    q1, q2 = x1 / n, x2 / n
    if method == "arcsine":
        z = (2 * np.arcsin(np.sqrt(q2)) - 2 * np.arcsin(np.sqrt(q1))) / math.sqrt(2 / n)
    elif method == "unpooled":
        z = (q2 - q1) / np.sqrt((q1 * (1 - q1) + q2 * (1 - q2)) / n)
    else:
        pooled = (x1 + x2) / (2 * n)
        shift = np.maximum(np.abs(q2 - q1) - (1 / n if method == "continuity" else 0), 0)
        z = shift / np.sqrt(pooled * (1 - pooled) * 2 / n)
    return float((np.abs(z) > Z).mean())


@pytest.mark.parametrize("method", PROPORTION_METHODS)
def test_monte_carlo_power_of_each_method_at_its_sample_size(method: str) -> None:
    size = proportion_sample_size(0.10, 0.03, method=method)  # type: ignore[arg-type]
    rate = _rejections(method, size.per_arm, 0.10, 0.13, 40_000, np.random.default_rng(1))
    assert rate == pytest.approx(0.80, abs=0.012), (method, size.per_arm, rate)


@pytest.mark.parametrize(("d", "expected"), [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_means_exact_noncentral_t_textbook(d: float, expected: int) -> None:
    # Cohen's small, medium, large effects: 394, 64 and 26 per group (G*Power, exact t).
    assert mean_sample_size(10.0, d, 1.0).per_arm == expected
    assert mean_sample_size(10.0, d / 10, 1.0, relative=True).per_arm == expected


def test_mean_power_matches_simulated_t_tests() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(0.0, 1.0, size=(20_000, 64))
    b = rng.normal(0.5, 1.0, size=(20_000, 64))
    rejected = (sps.ttest_ind(b, a, axis=1).pvalue < 0.05).mean()
    assert mean_power(64, 0.5, 1.0) == pytest.approx(rejected, abs=0.01)
    assert mean_mde(64, 1.0) == pytest.approx(0.5, abs=0.005)
    assert mean_power(3000, 2.0, 1.0) == 1.0  # far in the tail, where scipy's noncentral t gives NaN


def test_sequential_sample_size_gives_the_power_asked_for() -> None:
    size = sequential_sample_size(0.10, 0.02)
    fixed = proportion_sample_size(0.10, 0.02, method="unpooled").per_arm
    assert size.per_arm > fixed  # always-valid intervals are wider
    assert size.method.startswith("sequential")
    rng = np.random.default_rng(9)
    n = size.per_arm
    q1, q2 = rng.binomial(n, 0.10, 40_000) / n, rng.binomial(n, 0.12, 40_000) / n
    se = np.sqrt((q1 * (1 - q1) + q2 * (1 - q2)) / n)
    rate = (sequential_p_value(q2 - q1, se, 2 * n, 0.05) < 0.05).mean()
    assert rate == pytest.approx(0.80, abs=0.012)
    assert sequential_sample_size(0.0, 0.5, sd=1.0).per_arm > 64


def test_sequential_mde_inverts_the_sample_size() -> None:
    size = sequential_sample_size(0.10, 0.02)
    assert sequential_mde(size.per_arm, 0.10) == pytest.approx(0.02, rel=2e-3)
    means = sequential_sample_size(5.0, 0.3, sd=2.0)
    assert sequential_mde(means.per_arm, 5.0, sd=2.0) == pytest.approx(0.3, rel=2e-3)
    assert sequential_mde(means.per_arm, 5.0, sd=2.0) > mean_mde(means.per_arm, 2.0) / 2


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(StatsError):
        proportion_sample_size(0.10, 0.0)
    with pytest.raises(StatsError):
        proportion_sample_size(0.95, 0.1)
    with pytest.raises(StatsError):
        proportion_sample_size(0.10, 0.02, power=0.01)
    with pytest.raises(StatsError):
        proportion_sample_size(0.10, 0.02, method="exact")  # type: ignore[arg-type]
    with pytest.raises(StatsError):
        mean_sample_size(1.0, 0.1, 0.0)
