"""Thompson sampling: reproducibility, the traffic floor, top-two, and the Bernoulli simulation."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.stats.bandits import apply_floor, best_arm_shares, thompson_beta, thompson_gaussian
from bastion.stats.errors import StatsError
from bastion.stats.summary import ArmStats


def test_weights_are_reproducible_from_the_seed() -> None:
    first = thompson_beta([40, 55, 47], [1000, 1000, 1000], seed=42, top_two=True)
    again = thompson_beta([40, 55, 47], [1000, 1000, 1000], seed=42, top_two=True)
    other = thompson_beta([40, 55, 47], [1000, 1000, 1000], seed=43, top_two=True)
    assert first == again
    assert first != other
    assert sum(first.weights) == pytest.approx(1.0)


def test_best_arm_probability_matches_the_exact_value() -> None:
    from bastion.stats.bayesian import beta_binomial_chance_to_win

    result = thompson_beta([50, 62], [1000, 1000], seed=1, draws=200_000, floor=0.0)
    assert result.best_arm_probabilities[1] == pytest.approx(beta_binomial_chance_to_win(50, 1000, 62, 1000), abs=0.004)
    assert result.weights == pytest.approx(result.best_arm_probabilities)


def test_floor_keeps_every_arm_at_one_percent() -> None:
    result = thompson_beta([10, 200], [1000, 1000], seed=3)
    assert result.best_arm_probabilities[0] == 0.0
    assert result.weights == pytest.approx((0.01, 0.99))
    assert apply_floor([0.0, 0.0, 1.0], 0.4).tolist() == pytest.approx([1 / 3] * 3)
    assert apply_floor([0.2, 0.8], 0.0).tolist() == pytest.approx([0.2, 0.8])


def test_top_two_counts_the_runner_up() -> None:
    samples = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0]])
    assert best_arm_shares(samples).tolist() == [0.75, 0.25, 0.0]
    assert best_arm_shares(samples, top_two=True).tolist() == pytest.approx([3 / 8, 3 / 8, 2 / 8])
    assert best_arm_shares(samples, inverse=True).tolist() == [0.25, 0.25, 0.5]


def test_gaussian_arms() -> None:
    arms = [ArmStats(400, 1.0, 4.0), ArmStats(400, 1.5, 4.0), ArmStats(400, 0.5, 4.0)]
    higher = thompson_gaussian(arms, seed=5)
    assert max(range(3), key=lambda i: higher.weights[i]) == 1
    lower = thompson_gaussian(arms, seed=5, inverse=True)
    assert max(range(3), key=lambda i: lower.weights[i]) == 2
    empty = thompson_gaussian([ArmStats(0, 0.0, 0.0), ArmStats(50, 1.0, 1.0)], seed=5)
    assert empty.weights == (0.5, 0.5)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(StatsError):
        thompson_beta([5, 20], [10, 10], seed=0)
    with pytest.raises(StatsError):
        thompson_beta([5], [10], seed=0)


def test_thompson_sends_most_traffic_to_the_better_arm() -> None:
    """Bernoulli arms at 5% and 10%, 2,000 rounds of one unit each, 50 seeds: >= 85% to the better arm.

    Each round asks ``thompson_beta`` for the weights (one posterior draw is Thompson sampling
    itself) with the 1% floor, and sends the unit to an arm drawn from them.
    """
    rates = np.array([0.05, 0.10])
    shares = []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        successes, trials = np.zeros(2, dtype=int), np.zeros(2, dtype=int)
        for _ in range(2000):
            weights = thompson_beta(successes, trials, seed=rng, draws=1).weights
            arm = 0 if rng.random() < weights[0] else 1
            trials[arm] += 1
            successes[arm] += rng.random() < rates[arm]
        shares.append(trials[1] / trials.sum())
    print(f"Thompson 5% vs 10%, 2,000 rounds, 50 seeds: better arm's mean share {np.mean(shares):.3f}")
    assert np.mean(shares) >= 0.85
