"""Frequentist tests on two arms: Welch's t-test on absolute or relative effects.

Welch's test does not assume equal variances; its degrees of freedom come from the
Welch-Satterthwaite approximation. The interval and p-value use the t distribution with those
degrees of freedom, on the effect from ``bastion.stats.effects`` (delta-method variance for a
relative lift), which is exactly GrowthBook's two-sided frequentist test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from bastion.stats.effects import effect
from bastion.stats.summary import ArmStats

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TestResult:
    """An effect with its two-sided interval and p-value (frequentist or sequential)."""

    expected: float
    ci: tuple[float, float]
    p_value: float
    standard_error: float


def welch_dof(control: ArmStats, treatment: ArmStats) -> float:
    """Welch-Satterthwaite degrees of freedom for the difference of the two means."""
    va = control.variance / control.n
    vb = treatment.variance / treatment.n
    denominator = va**2 / (control.n - 1) + vb**2 / (treatment.n - 1)
    if denominator <= 0:
        return float(control.n + treatment.n - 2)
    return float((va + vb) ** 2 / denominator)


def t_two_sided_p(t: npt.ArrayLike, dof: npt.ArrayLike) -> FloatArray:
    """Two-sided p-value of a t statistic (vectorised: simulations call it on arrays)."""
    return np.asarray(2.0 * sps.t.sf(np.abs(np.asarray(t, dtype=float)), dof), dtype=float)


def welch_test(control: ArmStats, treatment: ArmStats, *, relative: bool = False, alpha: float = 0.05) -> TestResult:
    """Welch's two-sided t-test; the effect is absolute or relative (a lift of 0.05 is +5%)."""
    eff = effect(control, treatment, relative=relative)
    dof = welch_dof(control, treatment)
    se = eff.standard_error
    half = float(sps.t.ppf(1.0 - alpha / 2.0, dof)) * se
    p_value = float(t_two_sided_p(eff.estimate / se, dof))
    return TestResult(
        expected=eff.estimate, ci=(eff.estimate - half, eff.estimate + half), p_value=p_value, standard_error=se
    )
