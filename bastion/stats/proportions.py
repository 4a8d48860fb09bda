"""Tests for counts: two-proportion z, chi-square on a contingency table, Fisher's exact test.

The z-test is the large-sample test for binomial metrics; chi-square generalises it to several
arms (on a 2x2 table without continuity correction it equals the pooled z-test squared); Fisher's
exact test is the one to trust when some cell counts are small (below about 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from bastion.stats.errors import StatsError

#: Two probabilities within this relative distance count as equal in Fisher's two-sided sum
#: (the tolerance R and scipy use, so ties from floating-point noise are not dropped).
_FISHER_TIE = 1.0 + 1e-7


@dataclass(frozen=True, slots=True)
class ZTestResult:
    """Difference ``p_b - p_a``, its Wald interval, the z statistic and its two-sided p-value."""

    difference: float
    ci: tuple[float, float]
    z: float
    p_value: float


def _check_counts(successes: int, n: int) -> None:
    if n <= 0 or successes < 0 or successes > n:
        raise StatsError(f"need 0 <= successes <= n and n > 0 (got {successes} of {n})")


def two_proportion_z_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, pooled: bool = True, alpha: float = 0.05
) -> ZTestResult:
    """Two-sided z-test of ``p_a == p_b``.

    ``pooled`` uses the pooled proportion for the standard error under the null (the textbook
    test); otherwise the unpooled (Wald) standard error. The interval is always the Wald interval.
    """
    _check_counts(successes_a, n_a)
    _check_counts(successes_b, n_b)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    diff = p_b - p_a
    wald_se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    if pooled:
        p = (successes_a + successes_b) / (n_a + n_b)
        se = math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))
    else:
        se = wald_se
    if se == 0:
        raise StatsError("both arms are all successes or all failures: the z-test is undefined")
    z = diff / se
    half = float(sps.norm.ppf(1 - alpha / 2)) * wald_se
    return ZTestResult(difference=diff, ci=(diff - half, diff + half), z=z, p_value=float(2 * sps.norm.sf(abs(z))))


def chi_square_test(table: npt.ArrayLike, *, correction: bool = False) -> tuple[float, float]:
    """Pearson's chi-square test of independence on an r x c table of counts: (statistic, p).

    ``correction`` applies Yates' continuity correction, which only exists for 2 x 2 tables.
    """
    observed = np.asarray(table, dtype=float)
    if observed.ndim != 2 or min(observed.shape) < 2 or (observed < 0).any():
        raise StatsError("a chi-square test needs a table of non-negative counts with at least 2 rows and 2 columns")
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    if (expected == 0).any():
        raise StatsError("a row or column of the table is all zeros")
    deviation = np.abs(observed - expected)
    if correction and observed.shape == (2, 2):
        deviation = np.maximum(deviation - 0.5, 0.0)
    statistic = float(((deviation**2) / expected).sum())
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    return statistic, float(sps.chi2.sf(statistic, dof))


def fisher_exact(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Fisher's exact test on ``[[a, b], [c, d]]``: (sample odds ratio, two-sided p-value).

    Rows are arms, columns successes and failures. The two-sided p-value sums the probabilities of
    every table with the same margins that is no more likely than the observed one.
    """
    if min(a, b, c, d) < 0:
        raise StatsError("Fisher's test needs non-negative counts")
    row1, col1, total = a + b, a + c, a + b + c + d
    odds_ratio = (a * d) / (b * c) if b * c else (math.inf if a * d else math.nan)
    if total == 0 or row1 in (0, total) or col1 in (0, total):
        return odds_ratio, 1.0
    low, high = max(0, row1 + col1 - total), min(row1, col1)
    support = np.arange(low, high + 1)
    pmf = sps.hypergeom.pmf(support, total, row1, col1)
    observed = sps.hypergeom.pmf(a, total, row1, col1)
    p_value = float(pmf[pmf <= observed * _FISHER_TIE].sum())
    return odds_ratio, min(p_value, 1.0)
