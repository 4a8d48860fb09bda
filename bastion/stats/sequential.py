"""Sequential testing: always-valid confidence sequences, so results may be read every day.

A fixed-horizon test checked repeatedly finds a "significant" difference far more often than
``alpha`` (about 25% of A/A tests checked 20 times at alpha = 0.05). Asymptotic confidence
sequences (Waudby-Smith et al., arXiv 2103.06476, eq. 9 and 155), as GrowthBook implements them,
widen the interval so that it holds at every look at once: with ``N`` units in the two arms,
``rho = sqrt((-2 log alpha + log(1 - 2 log alpha)) / tuning)`` and the half-width is
``sqrt(s2) * sqrt(2 (N rho^2 + 1) / (N rho)^2 * log(sqrt(N rho^2 + 1) / alpha))`` where
``s2 = N * se^2``. The tuning parameter is the total sample size at which the sequence is
tightest; GrowthBook's default is 5,000.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bastion.stats.effects import effect
from bastion.stats.frequentist import FloatArray, TestResult
from bastion.stats.summary import ArmStats

DEFAULT_TUNING = 5000.0


def sequential_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """The mixing parameter for a two-sided sequence tuned to ``tuning`` total units."""
    log_alpha = np.log(alpha)
    return float(np.sqrt((-2 * log_alpha + np.log(-2 * log_alpha + 1)) / tuning))


def sequential_halfwidth(
    se: npt.ArrayLike, n: npt.ArrayLike, alpha: float, tuning: float = DEFAULT_TUNING
) -> FloatArray:
    """Half-width of the always-valid interval for an estimate with standard error ``se`` at ``n`` units."""
    rho = sequential_rho(alpha, tuning)
    n_arr = np.asarray(n, dtype=float)
    s2 = np.asarray(se, dtype=float) ** 2 * n_arr
    nr2 = n_arr * rho**2 + 1
    return np.asarray(np.sqrt(s2) * np.sqrt(2 * nr2 * np.log(np.sqrt(nr2) / alpha) / (n_arr * rho) ** 2), dtype=float)


def sequential_p_value(
    estimate: npt.ArrayLike, se: npt.ArrayLike, n: npt.ArrayLike, alpha: float, tuning: float = DEFAULT_TUNING
) -> FloatArray:
    """Always-valid p-value: ``min(1, 1 / e-value)`` of the mixture martingale (eq. 155).

    It depends on ``alpha`` only through ``rho``, the tuning; it is below ``alpha`` exactly when
    the always-valid interval excludes 0.
    """
    rho = sequential_rho(alpha, tuning)
    n_arr = np.asarray(n, dtype=float)
    st2 = np.asarray(estimate, dtype=float) ** 2 * n_arr / np.asarray(se, dtype=float) ** 2
    nr2 = n_arr * rho**2 + 1
    log_evalue = rho**2 * st2 / (2 * nr2) - 0.5 * np.log(nr2)
    return np.asarray(np.minimum(np.exp(-log_evalue), 1.0), dtype=float)


def sequential_test(
    control: ArmStats,
    treatment: ArmStats,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> TestResult:
    """The effect with its always-valid interval and p-value (valid whenever it is looked at)."""
    eff = effect(control, treatment, relative=relative)
    n = control.n + treatment.n
    se = eff.standard_error
    half = float(sequential_halfwidth(se, n, alpha, tuning))
    p_value = float(sequential_p_value(eff.estimate, se, n, alpha, tuning))
    return TestResult(
        expected=eff.estimate, ci=(eff.estimate - half, eff.estimate + half), p_value=p_value, standard_error=se
    )
