"""Agreement and interval maths against independent references: statsmodels' kappas (unweighted,
linear, quadratic), statsmodels' Wilson interval, and Krippendorff's own worked example (his 2011 paper
"Computing Krippendorff's alpha-reliability": nominal 0.743, ordinal 0.815, interval 0.849)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from bastion.review.agreement import agreement_by_dimension, cohen_kappa, krippendorff_alpha, wilson

#: Krippendorff (2011), section C: four observers, twelve units, None: not coded.
_K2011 = [
    [1, 1, None, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [None, 5, 5, 5],
    [None, None, 1, 1],
    [None, 3, None, None],
]


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_reproduces_the_published_example(metric: str, published: float) -> None:
    alpha = krippendorff_alpha(_K2011, metric)  # type: ignore[arg-type]
    assert alpha is not None and round(alpha, 3) == published


def _alpha_by_pairs(units: list[list[int | None]]) -> float:
    """Nominal alpha from its definition over pairable values (no coincidence matrix)."""
    pairs_within: list[tuple[int, int]] = []
    values: list[int] = []
    weights: list[float] = []
    for unit in units:
        present = [v for v in unit if v is not None]
        if len(present) < 2:
            continue
        values.extend(present)
        for i, a in enumerate(present):
            for j, b in enumerate(present):
                if i != j:
                    pairs_within.append((a, b))
                    weights.append(1.0 / (len(present) - 1))
    n = len(values)
    observed = sum(w for (a, b), w in zip(pairs_within, weights, strict=True) if a != b) / n
    expected = sum(1 for i in range(n) for j in range(n) if i != j and values[i] != values[j]) / (n * (n - 1))
    return 1 - observed / expected


def test_nominal_alpha_matches_the_pairwise_definition_on_random_data() -> None:
    rng = random.Random(7)
    for _ in range(20):
        units: list[list[int | None]] = [
            [rng.choice([None, 1, 2, 3, 4, 5]) for _ in range(rng.randint(2, 5))] for _ in range(30)
        ]
        assert krippendorff_alpha(units, "nominal") == pytest.approx(_alpha_by_pairs(units), abs=1e-12)


def test_two_raters_alpha_and_kappa_agree_on_perfect_and_chance_data() -> None:
    assert cohen_kappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert krippendorff_alpha([[v, v] for v in (1, 2, 3, 4, 5)]) == pytest.approx(1.0)
    assert cohen_kappa([3, 3, 3], [3, 3, 3]) is None  # no variation: undefined, not 1
    assert krippendorff_alpha([[1], [2, None]]) is None  # nothing pairable


def _table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    labels = sorted(set(a.tolist()) | set(b.tolist()))
    return np.array([[np.sum((a == i) & (b == j)) for j in labels] for i in labels])


@pytest.mark.parametrize("weights", ["none", "linear", "quadratic"])
def test_cohen_kappa_matches_statsmodels(weights: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(25):
        a = rng.integers(1, 6, size=40)
        b = np.clip(a + rng.integers(-1, 2, size=40), 1, 5)
        ours = cohen_kappa(a.tolist(), b.tolist(), weights)  # type: ignore[arg-type]
        reference = cohens_kappa(_table(a, b), wt=None if weights == "none" else weights, return_results=False)
        assert ours == pytest.approx(float(reference), abs=1e-12)


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (10, 10), (57, 91), (1, 1), (480, 500)])
def test_wilson_matches_statsmodels(successes: int, trials: int) -> None:
    low, high = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    interval = wilson(successes, trials)
    assert interval.rate == pytest.approx(successes / trials)
    assert interval.low == pytest.approx(low, abs=1e-9)
    assert interval.high == pytest.approx(high, abs=1e-9)


def test_wilson_without_trials_has_no_rate() -> None:
    assert wilson(0, 0).to_json() == {"rate": None, "low": None, "high": None, "passed": 0, "n": 0}


def test_agreement_by_dimension_uses_kappa_for_two_raters_only() -> None:
    two = {
        f"i{i}": {"r1": {"accuracy": s}, "r2": {"accuracy": t}}
        for i, (s, t) in enumerate([(1, 1), (2, 3), (5, 5), (4, 4)])
    }
    result = agreement_by_dimension(two, ["accuracy"])["accuracy"]
    reference = cohens_kappa(_table(np.array([1, 2, 5, 4]), np.array([1, 3, 5, 4])), return_results=False)
    assert result["cohen_kappa"] == pytest.approx(float(reference))
    assert result["items"] == 4 and result["raters"] == 2
    three = {k: {**v, "r3": {"accuracy": 2}} for k, v in two.items()}
    result3 = agreement_by_dimension(three, ["accuracy"])["accuracy"]
    assert "cohen_kappa" not in result3 and result3["raters"] == 3
    assert result3["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha([[s["r1"]["accuracy"], s["r2"]["accuracy"], 2] for s in two.values()], "ordinal")
    )
