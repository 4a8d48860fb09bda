"""Multi-armed bandits: Thompson sampling weights with a per-arm floor, reproducible from a seed.

Instead of a fixed split, a bandit sends more traffic to the arms that look better: each arm's
weight is the posterior probability that it is the best (estimated from ``draws`` joint posterior
samples). Top-two Thompson sampling gives each arm the share of samples in which it is the best or
the second best, which keeps exploring the runner-up and identifies the best arm faster. Every arm
keeps at least ``floor`` of the traffic (GrowthBook's 1%), added on the simplex
(``floor + (1 - k floor) w``) so the posterior ordering and spacing survive. Posteriors: Beta for
Bernoulli metrics, normal (flat or Gaussian prior) for continuous ones. The same seed and data give
the same weights on every machine (numpy's PCG64).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bastion.stats.bayesian import GaussianPrior
from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats

FloatArray = npt.NDArray[np.float64]
DEFAULT_FLOOR = 0.01
DEFAULT_DRAWS = 10_000


@dataclass(frozen=True, slots=True)
class BanditWeights:
    """Traffic weights (sum 1) and each arm's posterior probability of being the best."""

    weights: tuple[float, ...]
    best_arm_probabilities: tuple[float, ...]


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def best_arm_shares(samples: FloatArray, *, top_two: bool = False, inverse: bool = False) -> FloatArray:
    """Share of posterior samples (rows) in which each arm (column) is the best (or among the top two).

    ``inverse`` ranks lower values first, for metrics where lower is better.
    """
    values = -samples if inverse else samples
    k = values.shape[1]
    best = np.bincount(np.argmax(values, axis=1), minlength=k).astype(float)
    if top_two and k > 1:
        second = np.bincount(np.argsort(values, axis=1)[:, -2], minlength=k).astype(float)
        best = best + second
    return np.asarray(best / best.sum(), dtype=float)


def apply_floor(weights: npt.ArrayLike, floor: float = DEFAULT_FLOOR) -> FloatArray:
    """Give every arm at least ``floor``: ``floor + (1 - k floor) * w``; equal weights if k floors exceed 1."""
    w = np.asarray(weights, dtype=float)
    k = len(w)
    f = max(0.0, floor)
    if f * k >= 1.0:
        return np.full(k, 1.0 / k)
    return np.asarray(f + (1.0 - f * k) * (w / w.sum()), dtype=float)


def _weights(samples: FloatArray, top_two: bool, floor: float, inverse: bool) -> BanditWeights:
    best = best_arm_shares(samples, inverse=inverse)
    traffic = best_arm_shares(samples, top_two=True, inverse=inverse) if top_two else best
    return BanditWeights(
        weights=tuple(float(x) for x in apply_floor(traffic, floor)),
        best_arm_probabilities=tuple(float(x) for x in best),
    )


def thompson_beta(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    *,
    seed: int | np.random.Generator,
    draws: int = DEFAULT_DRAWS,
    top_two: bool = False,
    floor: float = DEFAULT_FLOOR,
    prior: tuple[float, float] = (1.0, 1.0),
) -> BanditWeights:
    """Weights for Bernoulli arms from Beta(prior + successes, prior + failures) posteriors."""
    s = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    if s.shape != n.shape or s.ndim != 1 or len(s) < 2 or (s < 0).any() or (s > n).any():
        raise StatsError("a bandit needs 0 <= successes <= trials for at least 2 arms")
    if draws < 1 or min(prior) <= 0:
        raise StatsError("draws must be >= 1 and the Beta prior positive")
    samples = _rng(seed).beta(prior[0] + s, prior[1] + n - s, size=(draws, len(s)))
    return _weights(samples, top_two, floor, inverse=False)


def thompson_gaussian(
    arms: Sequence[ArmStats],
    *,
    seed: int | np.random.Generator,
    draws: int = DEFAULT_DRAWS,
    top_two: bool = False,
    floor: float = DEFAULT_FLOOR,
    inverse: bool = False,
    prior: GaussianPrior | None = None,
) -> BanditWeights:
    """Weights for continuous arms: each arm's mean ~ N(posterior mean, posterior variance).

    With the default flat prior an arm needs at least 2 units with some variance; until every arm
    has that, the answer is equal weights (nothing is known yet).
    """
    if len(arms) < 2 or draws < 1:
        raise StatsError("a bandit needs at least 2 arms and draws >= 1")
    prior = prior or GaussianPrior()
    prior_precision = 1.0 / prior.variance if prior.proper else 0.0
    data_precision = np.array([a.n / a.variance if a.n > 1 and a.variance > 0 else 0.0 for a in arms])
    precision = prior_precision + data_precision
    k = len(arms)
    if (precision <= 0).any():
        equal = tuple([1.0 / k] * k)
        return BanditWeights(weights=equal, best_arm_probabilities=equal)
    means = np.array([a.mean for a in arms])
    posterior_mean = (prior_precision * prior.mean + data_precision * means) / precision
    samples = _rng(seed).normal(posterior_mean, np.sqrt(1.0 / precision), size=(draws, k))
    return _weights(samples, top_two, floor, inverse)
