"""Sample-ratio mismatch: is the observed split of units the one the weights asked for?

A mismatch means assignment or logging is broken (a variant that crashes before it is recorded,
bots on one arm), and no effect estimate from such an experiment can be trusted. The check is
Pearson's chi-square goodness of fit against the configured weights, flagged at p < 0.001 as
GrowthBook does: strict enough that a healthy experiment checked daily is rarely flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from bastion.stats.errors import StatsError

SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    p_value: float
    mismatch: bool


def srm_p_value(counts: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Chi-square p-value of the observed counts against the weights (equal weights by default).

    Arms with weight 0 are left out of the statistic; no units at all gives 1 (no evidence).
    """
    observed = np.asarray(counts, dtype=float)
    expected_share = np.full(observed.shape, 1.0) if weights is None else np.asarray(weights, dtype=float)
    if observed.shape != expected_share.shape or observed.ndim != 1 or len(observed) < 2:
        raise StatsError("SRM needs one count and one weight per arm, for at least 2 arms")
    if (observed < 0).any() or (expected_share < 0).any() or expected_share.sum() <= 0:
        raise StatsError("SRM needs non-negative counts and weights, not all weights 0")
    total = observed.sum()
    if total == 0:
        return 1.0
    live = expected_share > 0
    expected = expected_share[live] / expected_share.sum() * total
    statistic = float((((observed[live] - expected) ** 2) / expected).sum())
    return float(sps.chi2.sf(statistic, len(observed) - 1))


def srm_check(counts: Sequence[float], weights: Sequence[float] | None = None) -> SrmResult:
    """The p-value and whether it is below the 0.001 threshold."""
    p = srm_p_value(counts, weights)
    return SrmResult(p_value=p, mismatch=p < SRM_THRESHOLD)
