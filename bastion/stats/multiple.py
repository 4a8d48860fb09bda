"""Multiple-testing corrections across metrics and variants: adjusted p-values.

Testing several metrics or variants at alpha = 0.05 each makes some false positive likely. Holm's
step-down method controls the family-wise error rate (no false positive at all, with probability
1 - alpha) and is uniformly better than Bonferroni; Benjamini-Hochberg controls the false
discovery rate (the expected share of false positives among the positives), which keeps more power
when many comparisons are made. Both return adjusted p-values to compare with alpha as usual.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bastion.stats.errors import StatsError

FloatArray = npt.NDArray[np.float64]


def _p_values(p_values: npt.ArrayLike) -> FloatArray:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise StatsError("p-values must be a list of numbers between 0 and 1")
    return p


def holm(p_values: npt.ArrayLike) -> FloatArray:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    p = _p_values(p_values)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = _p_values(p_values)
    m = len(p)
    order = np.argsort(p, kind="stable")[::-1]
    ranks = np.arange(m, 0, -1)
    stepped = np.minimum.accumulate(p[order] * m / ranks)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
