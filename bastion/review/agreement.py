"""Agreement between reviewers and pass rates: Cohen's kappa (two raters), Krippendorff's alpha
(any number of raters, missing ratings allowed) and Wilson score intervals. Pure Python: the inputs
are a batch's reviews, a few thousand numbers at most."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Metric = Literal["nominal", "ordinal", "interval"]
Weights = Literal["none", "linear", "quadratic"]
#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable], weights: Weights = "none") -> float | None:
    """Cohen's kappa of two raters' paired ratings (``weights``: unweighted, or linear/quadratic
    disagreement weights over the sorted categories). None when it is undefined: no pairs, or
    chance agreement is already perfect (every rating the same category)."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return None
    categories = sorted(set(first) | set(second), key=_order)
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    observed = [[0.0] * k for _ in range(k)]
    for a, b in zip(first, second, strict=True):
        observed[index[a]][index[b]] += 1.0
    rows = [sum(row) for row in observed]
    cols = [sum(observed[i][j] for i in range(k)) for j in range(k)]

    def weight(i: int, j: int) -> float:
        if weights == "none":
            return 0.0 if i == j else 1.0
        distance = abs(i - j) / max(1, k - 1)
        return distance if weights == "linear" else distance * distance

    disagreement = sum(weight(i, j) * observed[i][j] for i in range(k) for j in range(k)) / n
    expected = sum(weight(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k)) / (n * n)
    if expected == 0.0:
        return None
    return 1.0 - disagreement / expected


def _order(value: Hashable) -> tuple[int, float | str]:
    return (0, float(value)) if isinstance(value, int | float) else (1, str(value))


def krippendorff_alpha(units: Iterable[Sequence[Hashable | None]], metric: Metric = "ordinal") -> float | None:
    """Krippendorff's alpha over ``units`` (each the ratings one item got; None: not rated by that
    rater). Units with fewer than two ratings are not pairable and are left out. None when
    undefined (fewer than two pairable values, or no variation at all)."""
    coincidences: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidences[(a, b)] += 1.0 / (m - 1)
    totals: dict[Hashable, float] = defaultdict(float)
    for (a, _b), count in coincidences.items():
        totals[a] += count
    n = sum(totals.values())
    if n <= 1:
        return None
    categories = sorted(totals, key=_order)
    delta = _distance(categories, totals, metric)
    observed = sum(count * delta[pair] for pair, count in coincidences.items()) / n
    expected = sum(totals[a] * totals[b] * delta[(a, b)] for a in categories for b in categories) / (n * (n - 1))
    if expected == 0.0:
        return None
    return 1.0 - observed / expected


def _distance(
    categories: list[Hashable], totals: dict[Hashable, float], metric: Metric
) -> dict[tuple[Hashable, Hashable], float]:
    out: dict[tuple[Hashable, Hashable], float] = {}
    position = {c: i for i, c in enumerate(categories)}
    for a in categories:
        for b in categories:
            if metric == "nominal":
                d = 0.0 if a == b else 1.0
            elif metric == "interval":
                d = (float(a) - float(b)) ** 2  # type: ignore[arg-type]  # interval data are numbers
            else:
                low, high = sorted((position[a], position[b]))
                between = sum(totals[categories[g]] for g in range(low, high + 1))
                d = (between - (totals[a] + totals[b]) / 2.0) ** 2
            out[(a, b)] = d
    return out


@dataclass(frozen=True, slots=True)
class Interval:
    rate: float | None
    low: float | None
    high: float | None
    successes: int
    trials: int

    def to_json(self) -> dict[str, float | int | None]:
        return {"rate": self.rate, "low": self.low, "high": self.high, "passed": self.successes, "n": self.trials}


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a pass rate (95% by default); no trials: no rate."""
    if trials <= 0:
        return Interval(None, None, None, 0, 0)
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), successes, trials)


def agreement_by_dimension(
    ratings: dict[str, dict[str, dict[str, int]]], dimensions: Sequence[str]
) -> dict[str, dict[str, float | int | str | None]]:
    """Per dimension: ``ratings`` is item -> reviewer -> dimension -> score. With exactly two
    reviewers overall, Cohen's kappa (unweighted and quadratic) on the items both rated; always
    Krippendorff's alpha (ordinal: the scores are ranks) over every item rated at least twice."""
    reviewers = sorted({reviewer for by_reviewer in ratings.values() for reviewer in by_reviewer})
    out: dict[str, dict[str, float | int | str | None]] = {}
    for dimension in dimensions:
        units = [[by_reviewer.get(r, {}).get(dimension) for r in reviewers] for by_reviewer in ratings.values()]
        pairable = sum(1 for unit in units if sum(v is not None for v in unit) >= 2)
        result: dict[str, float | int | str | None] = {
            "items": pairable,
            "raters": len(reviewers),
            "krippendorff_alpha": krippendorff_alpha(units, "ordinal"),
            "alpha_metric": "ordinal",
        }
        if len(reviewers) == 2:
            pairs = [(u[0], u[1]) for u in units if u[0] is not None and u[1] is not None]
            first, second = [p[0] for p in pairs], [p[1] for p in pairs]
            result["cohen_kappa"] = cohen_kappa(first, second)
            result["cohen_kappa_quadratic"] = cohen_kappa(first, second, "quadratic")
        out[dimension] = result
    return out


def verdict_counts(verdicts: Iterable[str | None]) -> dict[str, int]:
    return dict(Counter(v for v in verdicts if v))
