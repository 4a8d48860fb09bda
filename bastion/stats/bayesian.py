"""Bayesian analysis on the normal approximation, as GrowthBook's engine does it.

The effect estimate (absolute, or relative with its delta-method variance) is treated as a normal
likelihood; with a flat prior the posterior of the effect is ``N(estimate, se^2)``, with a proper
Gaussian prior it is the usual precision-weighted combination. From the posterior:

* chance to win: P(effect > 0) (P(effect < 0) for metrics where lower is better);
* the credible interval: the central ``1 - alpha`` posterior interval;
* risk, the expected loss: for control ``E[max(effect, 0)]`` (what we lose by keeping control if
  the treatment is better), for treatment ``E[max(-effect, 0)]``.

``beta_binomial_chance_to_win`` is the exact P(p_B > p_A) for two Beta posteriors, a cross-check
of the normal approximation on binomial metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from bastion.stats.effects import effect
from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A prior on the effect (on the relative scale for relative effects); improper means flat."""

    mean: float = 0.0
    variance: float = 1.0
    proper: bool = False


@dataclass(frozen=True, slots=True)
class BayesianResult:
    """Posterior summary of the effect."""

    expected: float
    ci: tuple[float, float]
    chance_to_win: float
    #: Expected loss of choosing (control, treatment).
    risk: tuple[float, float]
    standard_deviation: float


def normal_risk(mean: float, sd: float) -> tuple[float, float]:
    """(E[max(X, 0)], E[max(-X, 0)]) for X ~ N(mean, sd^2): the closed form of the truncated means."""
    if sd <= 0:
        return max(mean, 0.0), max(-mean, 0.0)
    z = mean / sd
    density = float(sps.norm.pdf(z))
    control_loss = mean * float(sps.norm.cdf(z)) + sd * density
    treatment_loss = sd * density - mean * float(sps.norm.cdf(-z))
    return max(control_loss, 0.0), max(treatment_loss, 0.0)


def bayesian_test(
    control: ArmStats,
    treatment: ArmStats,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    inverse: bool = False,
    prior: GaussianPrior | None = None,
) -> BayesianResult:
    """Chance to win, expected effect with credible interval, and risk for one treatment.

    ``inverse`` is for metrics where lower is better (latency, cost): the chance to win becomes
    P(effect < 0) and the risks swap. The prior, when proper, is on the same scale as the effect.
    """
    eff = effect(control, treatment, relative=relative)
    prior = prior or GaussianPrior()
    if prior.proper:
        if prior.variance <= 0:
            raise StatsError("a proper prior needs a positive variance")
        precision = 1.0 / eff.variance + 1.0 / prior.variance
        mean = (eff.estimate / eff.variance + prior.mean / prior.variance) / precision
    else:
        precision = 1.0 / eff.variance
        mean = eff.estimate
    sd = math.sqrt(1.0 / precision)
    win = float(sps.norm.sf(0.0, loc=mean, scale=sd))
    low, high = (float(x) for x in sps.norm.ppf([alpha / 2, 1 - alpha / 2], loc=mean, scale=sd))
    risk_control, risk_treatment = normal_risk(mean, sd)
    if inverse:
        win = 1.0 - win
        risk_control, risk_treatment = risk_treatment, risk_control
    return BayesianResult(
        expected=mean, ci=(low, high), chance_to_win=win, risk=(risk_control, risk_treatment), standard_deviation=sd
    )


def beta_binomial_chance_to_win(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, prior: tuple[int, int] = (1, 1)
) -> float:
    """Exact P(p_B > p_A) with independent Beta(prior + successes, prior + failures) posteriors.

    Uses the closed-form sum over ``i < alpha_B`` of
    ``B(alpha_A + i, beta_A + beta_B) / ((beta_B + i) B(1 + i, beta_B) B(alpha_A, beta_A))``
    (in log space), which needs integer prior parameters; the cost is one term per success of B.
    """
    if min(prior) < 1:
        raise StatsError("the Beta prior's parameters must be integers >= 1")
    for successes, n in ((successes_a, n_a), (successes_b, n_b)):
        if n < 0 or successes < 0 or successes > n:
            raise StatsError(f"need 0 <= successes <= n (got {successes} of {n})")
    a_a, b_a = prior[0] + successes_a, prior[1] + n_a - successes_a
    a_b, b_b = prior[0] + successes_b, prior[1] + n_b - successes_b
    i = np.arange(a_b, dtype=float)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - special.betaln(1 + i, b_b) - special.betaln(a_a, b_a)
    )
    return float(min(max(np.exp(special.logsumexp(log_terms)), 0.0), 1.0))
