"""The effect of a treatment over control, absolute or relative, with its variance.

The relative lift ``(m_b - m_a) / |m_a|`` is a ratio of two independent means; its variance comes
from the delta method, ``v_b / m_a^2 + v_a * m_b^2 / m_a^4`` (with ``v = variance / n``), the form
GrowthBook's engine uses. Every test (frequentist, sequential, Bayesian) starts from this estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats


@dataclass(frozen=True, slots=True)
class Effect:
    """A point estimate of the effect and its sampling variance."""

    estimate: float
    variance: float
    relative: bool

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.variance)


def relative_variance(control: ArmStats, treatment: ArmStats) -> float:
    """Delta-method variance of ``treatment.mean / control.mean`` (independent arms)."""
    m_a = control.mean
    v_a = control.variance / control.n
    v_b = treatment.variance / treatment.n
    return v_b / m_a**2 + v_a * treatment.mean**2 / m_a**4


def effect(control: ArmStats, treatment: ArmStats, *, relative: bool) -> Effect:
    """The treatment's effect; raises ``StatsError`` when it cannot be estimated.

    An arm with fewer than two units, no variance at all, or (for a relative effect) a control mean
    of zero gives no usable estimate; GrowthBook answers those with an empty result, we say why.
    """
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise StatsError(f"the {name} arm needs at least 2 units (has {arm.n})")
    if control.variance <= 0 and treatment.variance <= 0:
        raise StatsError("both arms have zero variance: nothing to compare")
    if relative:
        if control.mean == 0:
            raise StatsError("the control mean is 0: a relative effect is undefined (use relative: false)")
        estimate = (treatment.mean - control.mean) / abs(control.mean)
        variance = relative_variance(control, treatment)
    else:
        estimate = treatment.mean - control.mean
        variance = control.variance / control.n + treatment.variance / treatment.n
    if variance <= 0:
        raise StatsError("the effect has zero variance: nothing to compare")
    return Effect(estimate=estimate, variance=variance, relative=relative)
