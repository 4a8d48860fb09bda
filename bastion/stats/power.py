"""Sample size, power and minimum detectable effect, for two equal arms and a two-sided test.

Two proportions ``p1`` (control) and ``p2``, ``d = p2 - p1``, ``z_a = z(1 - alpha/2)``,
``z_b = z(power)``, ``q = 1 - p``; every answer is the per-arm n, rounded up:

* ``pooled``: ``(z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / d^2`` with ``pbar`` the mean of
  the two: the null variance pooled, the alternative unpooled (Fleiss, no continuity correction);
* ``unpooled`` (Wald): ``(z_a + z_b)^2 (p1 q1 + p2 q2) / d^2``;
* ``arcsine``: ``2 (z_a + z_b)^2 / h^2`` with Cohen's ``h = 2 asin sqrt(p2) - 2 asin sqrt(p1)``;
* ``continuity``: Fleiss with continuity correction, ``n/4 (1 + sqrt(1 + 4 / (n |d|)))^2`` from the
  pooled ``n``.

Means use the exact power of Welch's (equal-n, equal-variance) t-test from the noncentral t. The
sequential case asks for the n at which the always-valid interval (``bastion.stats.sequential``)
excludes zero with the requested probability (unpooled variance, normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from scipy import optimize
from scipy import stats as sps

from bastion.stats.errors import StatsError
from bastion.stats.sequential import DEFAULT_TUNING, sequential_halfwidth

ProportionMethod = Literal["pooled", "unpooled", "arcsine", "continuity"]
PROPORTION_METHODS: tuple[ProportionMethod, ...] = ("pooled", "unpooled", "arcsine", "continuity")
_MAX_N = 10**12


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Units needed per arm, the method that gave it, and the effect it was sized for."""

    per_arm: int
    method: str
    baseline: float
    treatment: float
    alpha: float
    power: float


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise StatsError("alpha and power must be strictly between 0 and 1")
    if power <= alpha:
        raise StatsError("power must be greater than alpha")
    return float(sps.norm.ppf(1 - alpha / 2)), float(sps.norm.ppf(power))


def treatment_rate(baseline: float, mde: float, *, relative: bool) -> float:
    """The treatment proportion the test is sized to detect."""
    p2 = baseline * (1 + mde) if relative else baseline + mde
    if not 0 < baseline < 1 or not 0 < p2 < 1:
        raise StatsError(f"baseline and baseline + effect must be proportions in (0, 1) (got {baseline} and {p2:g})")
    if mde == 0:
        raise StatsError("the minimum detectable effect must not be 0")
    return p2


def proportion_power(
    n: float, p1: float, p2: float, *, alpha: float = 0.05, method: ProportionMethod = "pooled"
) -> float:
    """Power at ``n`` per arm, the inverse of ``proportion_sample_size`` for the same method.

    Like the sample-size formulas it counts only the rejection tail on the side of the effect.
    """
    z_a = float(sps.norm.ppf(1 - alpha / 2))
    d = abs(p2 - p1)
    var_alt = p1 * (1 - p1) + p2 * (1 - p2)
    pbar = (p1 + p2) / 2
    if method == "unpooled":
        score = d * math.sqrt(n) / math.sqrt(var_alt) - z_a
    elif method == "arcsine":
        h = abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))
        score = h * math.sqrt(n / 2) - z_a
    elif method in ("pooled", "continuity"):
        shift = d - (1 / n if method == "continuity" else 0.0)
        score = (shift * math.sqrt(n) - z_a * math.sqrt(2 * pbar * (1 - pbar))) / math.sqrt(var_alt)
    else:
        raise StatsError(f"unknown method {method!r} (one of {', '.join(PROPORTION_METHODS)})")
    return float(sps.norm.cdf(score))


def proportion_sample_size(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    method: ProportionMethod = "pooled",
) -> SampleSize:
    """Per-arm n to detect ``mde`` (absolute, or relative to ``baseline``) on a proportion."""
    p1 = baseline
    p2 = treatment_rate(baseline, mde, relative=relative)
    z_a, z_b = _z(alpha, power)
    d = abs(p2 - p1)
    var_alt = p1 * (1 - p1) + p2 * (1 - p2)
    pbar = (p1 + p2) / 2
    pooled = (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(var_alt)) ** 2 / d**2
    if method == "pooled":
        n = pooled
    elif method == "unpooled":
        n = (z_a + z_b) ** 2 * var_alt / d**2
    elif method == "arcsine":
        h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
        n = 2 * (z_a + z_b) ** 2 / h**2
    elif method == "continuity":
        n = pooled / 4 * (1 + math.sqrt(1 + 4 / (pooled * d))) ** 2
    else:
        raise StatsError(f"unknown method {method!r} (one of {', '.join(PROPORTION_METHODS)})")
    # A hair below an integer is float noise in the formula, not a need for one more unit.
    return SampleSize(math.ceil(n - 1e-9), method, p1, p2, alpha, power)


def mean_power(n: float, mde: float, sd: float, *, alpha: float = 0.05) -> float:
    """Exact power of the two-sided two-sample t-test with ``n`` per arm (noncentral t, both tails)."""
    if n < 2:
        return 0.0
    dof = 2 * n - 2
    noncentrality = abs(mde) / (sd * math.sqrt(2 / n))
    critical = float(sps.t.ppf(1 - alpha / 2, dof))
    upper = float(sps.nct.sf(critical, dof, noncentrality))
    lower = float(sps.nct.cdf(-critical, dof, noncentrality))
    # scipy's noncentral t returns NaN far in a tail (noncentrality above ~30): there the far tail
    # is 0 and the near one is the normal's to many digits.
    if not math.isfinite(upper):
        upper = float(sps.norm.sf(critical - noncentrality))
    return upper + (lower if math.isfinite(lower) else 0.0)


def _smallest_n(power_at: Callable[[int], float], target: float, start: int = 2) -> int:
    """The smallest integer n >= start with ``power_at(n) >= target`` (power increases with n)."""
    low, high = start, max(start, 2)
    while power_at(high) < target:
        low = high + 1
        high *= 2
        if high > _MAX_N:
            raise StatsError("the effect is too small to detect with any practical sample size")
    while low < high:
        mid = (low + high) // 2
        if power_at(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return high


def mean_sample_size(
    baseline: float,
    mde: float,
    sd: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> SampleSize:
    """Per-arm n for a continuous metric with standard deviation ``sd`` (exact noncentral t)."""
    _z(alpha, power)
    if sd <= 0:
        raise StatsError("the standard deviation must be positive")
    delta = mde * abs(baseline) if relative else mde
    if delta == 0:
        raise StatsError("the minimum detectable effect must not be 0")
    n = _smallest_n(lambda k: mean_power(k, delta, sd, alpha=alpha), power)
    return SampleSize(n, "noncentral-t", baseline, baseline + delta, alpha, power)


def sequential_power(n: float, delta: float, unit_variance: float, *, alpha: float, tuning: float) -> float:
    """Power of the always-valid test at a look with ``n`` per arm, for an effect ``delta`` whose
    estimate has variance ``unit_variance / n``: P(|estimate| > half-width), normal approximation.

    GrowthBook's calculator also divides the effect by the widened standard error, which asks for
    more units than the test needs; here only the threshold is widened, the estimate's spread is
    the real one, so the answer is the power the simulation in tests/stats/test_power.py measures.
    """
    se = math.sqrt(unit_variance / n)
    half = float(sequential_halfwidth(se, 2 * n, alpha, tuning))
    return float(sps.norm.sf((half - abs(delta)) / se) + sps.norm.cdf((-half - abs(delta)) / se))


def sequential_sample_size(
    baseline: float,
    mde: float,
    *,
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    tuning: float = DEFAULT_TUNING,
) -> SampleSize:
    """Per-arm n for the sequential test; a proportion when ``sd`` is None, else a mean."""
    _z(alpha, power)
    if sd is None:
        p2 = treatment_rate(baseline, mde, relative=relative)
        delta = p2 - baseline
        unit_variance = baseline * (1 - baseline) + p2 * (1 - p2)
    else:
        if sd <= 0:
            raise StatsError("the standard deviation must be positive")
        delta = mde * abs(baseline) if relative else mde
        unit_variance = 2 * sd**2
    if delta == 0:
        raise StatsError("the minimum detectable effect must not be 0")
    n = _smallest_n(lambda k: sequential_power(k, delta, unit_variance, alpha=alpha, tuning=tuning), power)
    return SampleSize(n, f"sequential (tuning {tuning:g})", baseline, baseline + delta, alpha, power)


def proportion_mde(
    n: int, baseline: float, *, alpha: float = 0.05, power: float = 0.8, method: ProportionMethod = "pooled"
) -> float:
    """The smallest absolute lift ``p2 - baseline > 0`` detectable with ``n`` per arm."""
    _z(alpha, power)
    if not 0 < baseline < 1:
        raise StatsError("the baseline must be a proportion in (0, 1)")
    top = 1 - baseline - 1e-12
    if proportion_power(n, baseline, baseline + top, alpha=alpha, method=method) < power:
        raise StatsError(f"no lift is detectable with {n} units per arm")
    return float(
        optimize.brentq(
            lambda d: proportion_power(n, baseline, baseline + d, alpha=alpha, method=method) - power,
            1e-12,
            top,
            xtol=1e-12,
        )
    )


def mean_mde(n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest absolute difference in means detectable with ``n`` per arm (noncentral t)."""
    _z(alpha, power)
    if n < 2 or sd <= 0:
        raise StatsError("need n >= 2 per arm and a positive standard deviation")
    high = sd
    while mean_power(n, high, sd, alpha=alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda d: mean_power(n, d, sd, alpha=alpha) - power, 1e-12 * sd, high, xtol=1e-12))


def sequential_mde(
    n: int,
    baseline: float,
    *,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    tuning: float = DEFAULT_TUNING,
) -> float:
    """The smallest absolute effect the sequential test detects at a look with ``n`` per arm.

    A proportion when ``sd`` is None (the lift above ``baseline``), else a difference in means.
    """
    _z(alpha, power)
    if n < 2:
        raise StatsError("need n >= 2 per arm")
    if sd is not None:
        if sd <= 0:
            raise StatsError("the standard deviation must be positive")
        high = sd
        while sequential_power(n, high, 2 * sd**2, alpha=alpha, tuning=tuning) < power:
            high *= 2
        return float(
            optimize.brentq(
                lambda d: sequential_power(n, d, 2 * sd**2, alpha=alpha, tuning=tuning) - power,
                1e-12 * sd,
                high,
                xtol=1e-12,
            )
        )
    if not 0 < baseline < 1:
        raise StatsError("the baseline must be a proportion in (0, 1)")

    def gap(d: float) -> float:
        p2 = baseline + d
        variance = baseline * (1 - baseline) + p2 * (1 - p2)
        return sequential_power(n, d, variance, alpha=alpha, tuning=tuning) - power

    top = 1 - baseline - 1e-12
    if gap(top) < 0:
        raise StatsError(f"no lift is detectable with {n} units per arm")
    return float(optimize.brentq(gap, 1e-12, top, xtol=1e-12))
