"""SRM against scipy's goodness of fit; Holm and Benjamini-Hochberg against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bastion.stats.errors import StatsError
from bastion.stats.multiple import benjamini_hochberg, holm
from bastion.stats.srm import srm_check, srm_p_value


def test_srm_matches_scipy_chisquare() -> None:
    counts, weights = [5080, 4920], [0.5, 0.5]
    assert srm_p_value(counts, weights) == pytest.approx(sps.chisquare(counts).pvalue)
    counts3, weights3 = [2100, 2950, 5010], [0.2, 0.3, 0.5]
    expected = np.array(weights3) * sum(counts3)
    assert srm_p_value(counts3, weights3) == pytest.approx(sps.chisquare(counts3, expected).pvalue)


def test_srm_flags_below_one_in_a_thousand() -> None:
    assert srm_check([5000, 5000]).mismatch is False
    assert srm_check([5200, 4800]).mismatch is True  # chi2 = 16, p = 6e-5
    assert srm_check([0, 0]).p_value == 1.0


def test_srm_input_errors() -> None:
    with pytest.raises(StatsError):
        srm_p_value([10], [1.0])
    with pytest.raises(StatsError):
        srm_p_value([10, 10], [0.5])


def _holm_by_definition(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_its_definition(seed: int) -> None:
    p = np.random.default_rng(seed).uniform(0, 0.2, 12).tolist()
    assert holm(p) == pytest.approx(_holm_by_definition(p))


def test_holm_textbook_example() -> None:
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4): adjusted 0.03, 0.06, 0.06, 0.02.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    p = np.random.default_rng(seed).uniform(0, 0.1, 15)
    assert benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))


def test_p_values_out_of_range_are_refused() -> None:
    with pytest.raises(StatsError):
        holm([0.1, 1.5])
