"""Ratio metrics (cost per successful answer, tokens per request) with the delta method.

A ratio metric divides two per-unit sums, e.g. total cost over number of successes, where both
vary from unit to unit and are correlated. Its mean is ``sum(M) / sum(D)`` and, by the delta
method, its per-unit variance is ``var_M / d^2 + var_D m^2 / d^4 - 2 cov_MD m / d^3`` with ``m``
and ``d`` the means of numerator and denominator. The result is an ``ArmStats``, so every test in
the package applies to ratio metrics unchanged (GrowthBook's ``RatioStatistic`` is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats


@dataclass(frozen=True, slots=True)
class RatioSums:
    """Per-arm sums for a ratio metric over n units: numerator M, denominator D, and sum(M * D)."""

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    sum_products: float


def variance_of_ratio(mean_m: float, var_m: float, mean_d: float, var_d: float, cov_md: float) -> float:
    """Delta-method variance of M / D from the moments of M and D."""
    if mean_d == 0:
        raise StatsError("the denominator's mean is 0: the ratio is undefined")
    return var_m / mean_d**2 + var_d * mean_m**2 / mean_d**4 - 2 * cov_md * mean_m / mean_d**3


def ratio_arm(sums: RatioSums) -> ArmStats:
    """The arm's ratio ``sum(M) / sum(D)`` with its per-unit delta-method variance."""
    n = sums.n
    if n < 2:
        raise StatsError(f"a ratio metric needs at least 2 units per arm (has {n})")
    if sums.denominator_sum == 0:
        raise StatsError("the denominator sums to 0: the ratio is undefined")
    mean_m = sums.numerator_sum / n
    mean_d = sums.denominator_sum / n
    var_m = (sums.numerator_sum_squares - sums.numerator_sum**2 / n) / (n - 1)
    var_d = (sums.denominator_sum_squares - sums.denominator_sum**2 / n) / (n - 1)
    cov_md = (sums.sum_products - sums.numerator_sum * sums.denominator_sum / n) / (n - 1)
    variance = variance_of_ratio(mean_m, var_m, mean_d, var_d, cov_md)
    return ArmStats(n=n, mean=mean_m / mean_d, variance=max(variance, 0.0))
