"""Cross-checks against statsmodels (a test-only dependency; skipped where it is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.stats.frequentist import welch_test
from bastion.stats.multiple import benjamini_hochberg, holm
from bastion.stats.power import mean_power, mean_sample_size, proportion_power, proportion_sample_size
from bastion.stats.proportions import two_proportion_z_test
from bastion.stats.summary import ArmStats

pytest.importorskip("statsmodels")

from statsmodels.stats import multitest, power, proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW


def test_arcsine_sample_size_matches_normal_ind_power() -> None:
    for p1, p2 in ((0.10, 0.12), (0.05, 0.0625), (0.5, 0.55)):
        h = proportion.proportion_effectsize(p2, p1)
        reference = power.NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
        ours = proportion_sample_size(p1, p2 - p1, method="arcsine").per_arm
        assert ours == int(np.ceil(reference)), (p1, p2, reference)


def test_pooled_sample_size_and_power_match_statsmodels() -> None:
    # statsmodels' two-independent-proportions functions use the pooled variance under the null and
    # the unpooled one under the alternative: our `pooled` method (prop2 is the control there).
    for n, p1, p2 in ((3841, 0.10, 0.12), (500, 0.2, 0.27), (12_000, 0.03, 0.036)):
        size = proportion.samplesize_proportions_2indep_onetail(p2 - p1, p1, 0.8, ratio=1, alpha=0.05)
        assert proportion_sample_size(p1, p2 - p1).per_arm == int(np.ceil(size))
        reference = proportion.power_proportions_2indep(p2 - p1, p1, n, ratio=1, alpha=0.05).power
        # statsmodels adds the far rejection tail, which the textbook formula leaves out (< 1e-5 here).
        assert proportion_power(n, p1, p2, method="pooled") == pytest.approx(reference, abs=1e-5)


def test_noncentral_t_matches_tt_ind_power() -> None:
    analysis = power.TTestIndPower()
    for d in (0.2, 0.35, 0.5, 0.8):
        reference = analysis.solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0)
        assert mean_sample_size(0.0, d, 1.0).per_arm == int(np.ceil(reference))
        assert mean_power(50, d, 1.0) == pytest.approx(analysis.power(effect_size=d, nobs1=50, alpha=0.05), abs=1e-9)


def test_welch_matches_compare_means() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.lognormal(0, 1, 300), rng.lognormal(0.15, 1.2, 280)
    _, p_value, _ = CompareMeans(DescrStatsW(b), DescrStatsW(a)).ttest_ind(usevar="unequal")
    low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(usevar="unequal")
    ours = welch_test(
        ArmStats.from_sums(len(a), a.sum(), (a**2).sum()), ArmStats.from_sums(len(b), b.sum(), (b**2).sum())
    )
    assert ours.p_value == pytest.approx(p_value, rel=1e-9)
    assert ours.ci == pytest.approx((low, high), rel=1e-9)


def test_proportions_ztest_matches() -> None:
    stat, p_value = proportion.proportions_ztest([150, 120], [1000, 1000])
    ours = two_proportion_z_test(120, 1000, 150, 1000)
    assert ours.z == pytest.approx(stat)
    assert ours.p_value == pytest.approx(p_value)


def test_holm_and_bh_match_multipletests() -> None:
    p = np.random.default_rng(6).uniform(0, 0.08, 20)
    assert holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])
    assert benjamini_hochberg(p) == pytest.approx(multitest.multipletests(p, method="fdr_bh")[1])
