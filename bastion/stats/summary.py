"""Per-arm summary statistics: what every test in this package consumes.

An arm is reduced to its unit count, the mean of the per-unit metric and that metric's variance
across units. Binomial metrics use ``p(1 - p)`` and continuous metrics the sample variance
(``n - 1`` denominator), as GrowthBook does, so the same sums give the same answers there and here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bastion.stats.errors import StatsError

MetricKind = Literal["binomial", "mean"]


@dataclass(frozen=True, slots=True)
class ArmStats:
    """n units, the mean of their metric, and the metric's per-unit variance."""

    n: int
    mean: float
    variance: float

    @property
    def standard_error(self) -> float:
        """Standard error of the mean (0 for an empty arm)."""
        return math.sqrt(self.variance / self.n) if self.n > 0 and self.variance > 0 else 0.0

    @classmethod
    def from_proportion(cls, n: int, successes: float) -> ArmStats:
        """A binomial arm: ``successes`` of ``n`` units converted."""
        if n < 0 or successes < 0 or successes > n:
            raise StatsError(f"a binomial arm needs 0 <= successes <= n (got {successes} of {n})")
        p = successes / n if n else 0.0
        return cls(n=n, mean=p, variance=p * (1.0 - p))

    @classmethod
    def from_sums(cls, n: int, total: float, sum_squares: float) -> ArmStats:
        """A continuous arm from the sum and the sum of squares of its units' values."""
        if n < 0:
            raise StatsError(f"an arm's n must be >= 0 (got {n})")
        if sum_squares < 0:
            raise StatsError(f"sum_squares must be >= 0 (got {sum_squares})")
        mean = total / n if n else 0.0
        variance = (sum_squares - total * total / n) / (n - 1) if n > 1 else 0.0
        return cls(n=n, mean=mean, variance=max(variance, 0.0))

    @classmethod
    def from_summary(cls, metric: MetricKind, n: int, total: float, sum_squares: float | None = None) -> ArmStats:
        """Either kind, from the ``n``/``sum``/``sum_squares`` triple of an analysis file."""
        if metric == "binomial":
            return cls.from_proportion(n, total)
        if sum_squares is None:
            raise StatsError("a mean metric needs sum_squares for every arm")
        return cls.from_sums(n, total, sum_squares)
