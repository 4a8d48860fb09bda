"""Fusion and MMR as pure functions: RRF sums weight / (k + rank), linear fusion normalises each
list, MMR with lambda 1 keeps the order and with lambda 0 spreads out duplicates."""

from __future__ import annotations

import pytest

from bastion.knowledge.fusion import linear, mmr, rrf


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = dict(rrf([[(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)]], [1.0, 2.0], k=60))
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 62 + 2 / 61)
    assert fused[3] == pytest.approx(2 / 62)
    assert [item for item, _ in rrf([[(1, 9.0)], [(2, 1.0)]], [1.0, 1.0])] == [1, 2]  # ties: by id


def test_linear_fusion_normalises_each_list() -> None:
    fused = dict(linear([[(1, 20.0), (2, 10.0), (3, 0.0)], [(3, 0.9), (1, 0.1)]], [0.5, 0.5]))
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused[2] == pytest.approx(0.5 * 0.5)
    assert fused[3] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)


def test_mmr_lambda_one_keeps_order_and_lambda_zero_diversifies() -> None:
    ranked = [(1, 1.0), (2, 0.99), (3, 0.5), (4, 0.4)]
    same = {frozenset((1, 2)): 1.0}

    def similarity(a: int, b: int) -> float:
        return same.get(frozenset((a, b)), 0.1)

    assert [i for i, _ in mmr(ranked, similarity, 4, 1.0)] == [1, 2, 3, 4]
    assert [i for i, _ in mmr(ranked, similarity, 3, 0.5)] == [1, 3, 4]
    assert mmr([], similarity, 3, 0.5) == []
