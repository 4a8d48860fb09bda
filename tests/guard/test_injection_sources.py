"""Training across sources: large sources are damped, folds of sources are dealt evenly and
deterministically, and the held-out-by-source measurement fits on other sources only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.guard.train import LANGUAGE_WEIGHT_LIMIT, Row, language_balance, source_balance, source_of
from bastion.guard.train_run import render_card, train_model
from bastion.guard.train_sources import HeldOutHits, either_tier_rates, holdout_by_source, source_folds

from .corpus import ATTACKS, write_training_file


def _row(source: str, label: int, kind: str = "", text: str = "") -> Row:
    return Row(text or f"{source} {label}", label, kind or ("injection" if label else "benign"), source)


def test_source_is_the_repository_part() -> None:
    assert source_of(_row("owner/repo:data/file.csv", 1)) == "owner/repo"
    assert source_of(Row("t", 0, "benign", "", file="dev.jsonl")) == "dev.jsonl"


def test_source_balance_damps_large_sources_and_keeps_label_totals() -> None:
    rows = [_row("big/a:x", 1) for _ in range(900)] + [_row("small/b:y", 1) for _ in range(100)]
    rows += [_row("c/c:z", 0) for _ in range(50)]
    weights = source_balance(rows, 0.5)
    big, small = weights[0], weights[900]
    # Per row 1/sqrt(n): the 900-row source weighs 3x the 100-row one in total, not 9x.
    assert big * 900 == pytest.approx(3 * small * 100)
    assert weights[:1000].sum() == pytest.approx(1000)
    assert weights[1000:].sum() == pytest.approx(50)
    assert np.allclose(source_balance(rows, 0.0), 1.0)


def test_language_balance_makes_the_label_independent_of_the_language() -> None:
    def grouped(group: str, label: int) -> Row:
        row = _row("s/s:x", label)
        row.group = group
        return row

    # German 80% attacks, English 20%: overall 50%.
    rows = [grouped("Latin:de", 1) for _ in range(80)] + [grouped("Latin:de", 0) for _ in range(20)]
    rows += [grouped("Latin:en", 1) for _ in range(20)] + [grouped("Latin:en", 0) for _ in range(80)]
    weights = language_balance(rows, 1.0)
    for group in ("Latin:de", "Latin:en"):
        attacks = sum(w for w, r in zip(weights, rows, strict=True) if r.group == group and r.label)
        total = sum(w for w, r in zip(weights, rows, strict=True) if r.group == group)
        assert attacks / total == pytest.approx(0.5)
    assert np.allclose(language_balance(rows, 0.0), 1.0)
    # Half strength is the square root of the full factor.
    assert language_balance(rows, 0.5)[0] == pytest.approx(weights[0] ** 0.5)
    # A group with one benign row among many attacks is not blown up past the limit.
    lopsided = [grouped("Han", 1) for _ in range(99)] + [grouped("Han", 0)] + rows
    assert language_balance(lopsided, 1.0).max() == LANGUAGE_WEIGHT_LIMIT


def test_source_folds_spread_attacks_and_benign_rows() -> None:
    rows = []
    for name, attacks, benign in [
        ("a/1", 900, 800),
        ("b/2", 800, 0),
        ("c/3", 300, 100),
        ("d/4", 100, 0),
        ("e/5", 0, 1800),
        ("f/6", 0, 900),
        ("g/7", 0, 400),
    ]:
        rows += [_row(f"{name}:p", 1) for _ in range(attacks)] + [_row(f"{name}:q", 0) for _ in range(benign)]
    rows.append(Row("generated", 0, "benign-hard", "bastion:augment"))
    folds = source_folds(rows, 3)
    assert folds == source_folds(list(reversed(rows)), 3)
    assert sorted(name for fold in folds for name in fold) == ["a/1", "b/2", "c/3", "d/4", "e/5", "f/6", "g/7"]
    # The two largest attack sources land in different folds; generated rows are never held out.
    assert not any({"a/1", "b/2"} <= set(fold) for fold in folds)
    assert all("bastion" not in name for fold in folds for name in fold)
    # Linked sources (attacks built inside another source's documents) are held out together.
    linked = source_folds(rows, 3, together=(frozenset({"b/2", "e/5"}),))
    assert any({"b/2", "e/5"} <= set(fold) for fold in linked)
    assert sorted(name for fold in linked for name in fold) == sorted(name for fold in folds for name in fold)


def test_holdout_by_source_never_fits_on_the_held_out_sources() -> None:
    rows = [_row(f"s{k}/r:x", k % 2, text=f"row {k} {i}") for k in range(6) for i in range(10)]
    rows.append(Row(f"Explain this attack: {rows[1 * 10].text}", 0, "benign-hard", "bastion:augment"))
    train_idx = list(range(len(rows)))
    calib_idx = list(range(0, len(rows), 3))
    fitted_on: list[set[str]] = []
    scored: list[set[str]] = []

    def fit(indices: list[int]):  # type: ignore[no-untyped-def]
        fitted_on.append({source_of(rows[i]) for i in indices})
        quoted = [rows[i] for i in indices if rows[i].source.startswith("bastion:")]

        def score(chosen: list[int]) -> list[float]:
            scored.append({source_of(rows[i]) for i in chosen})
            return [float(rows[i].label) for i in chosen]

        fitted_on[-1] |= {"quote"} if quoted else set()
        return score

    result = holdout_by_source(rows, train_idx, calib_idx, fit, lambda _i, _s: (0.5, 0.9), folds=3)
    assert len(result["folds"]) == 3
    for fold, sources in zip(result["folds"], fitted_on, strict=True):
        assert not set(fold["sources"]) & sources
        # The generated row quotes an attack of s1: left out of the fold that holds s1 out.
        assert ("quote" in sources) == ("s1/r" not in fold["sources"])
    pooled = result["pooled_at_flag"]
    assert pooled["injection"] == {"rows": 30, "at_or_above": 1.0}
    assert pooled["benign"] == {"rows": 30, "at_or_above": 0.0}
    assert result["pooled_at_block"]["injection"]["at_or_above"] == 1.0


def test_held_out_hits_of_two_tiers_combine_as_either() -> None:
    rows = [_row(f"s{k}/r:x", k % 2, text=f"row {k} {i}") for k in range(6) for i in range(10)]
    train_idx = list(range(len(rows)))
    calib_idx = list(range(0, len(rows), 3))

    def tier(hit_rows: set[int]):  # type: ignore[no-untyped-def]
        """A fold model that scores 1.0 exactly the rows in ``hit_rows`` (by their number)."""

        def fit(_indices: list[int]):  # type: ignore[no-untyped-def]
            return lambda chosen: [1.0 if int(rows[i].text.split()[2]) in hit_rows else 0.0 for i in chosen]

        return fit

    first: HeldOutHits = {}
    second: HeldOutHits = {}
    # In every source the first tier catches rows 0-3, the second rows 2-5 and 9: either tier, 7 of 10.
    holdout_by_source(rows, train_idx, calib_idx, tier({0, 1, 2, 3}), lambda _i, _s: (0.5, 0.5), folds=3, hits=first)
    holdout_by_source(
        rows, train_idx, calib_idx, tier({2, 3, 4, 5, 9}), lambda _i, _s: (0.5, 0.5), folds=3, hits=second
    )
    assert len(first) == len(second) == len(rows)
    assert first[("s1/r:x", "row 1 0")] == ("injection", True, True, 1.0)
    assert second[("s1/r:x", "row 1 0")] == ("injection", False, False, 0.0)
    either = either_tier_rates(first, second)
    assert either["rows"] == len(rows)
    assert either["pooled_at_flag"]["injection"] == {"rows": 30, "at_or_above": 0.7}
    assert either["pooled_at_flag"]["benign"] == {"rows": 30, "at_or_above": 0.7}
    assert either["pooled_at_block"] == either["pooled_at_flag"]


def test_train_model_reports_by_source_and_baselines(tmp_path: Path) -> None:
    data = write_training_file(tmp_path / "train.jsonl")
    result = train_model([data], seed="t", bits=14, augment=False, regularisation_grid=(1e-3,), by_source_folds=3)
    held = result.card["metrics"]["held_out_by_source"]
    assert len(held["folds"]) == 3
    assert held["pooled_at_flag"]["injection"]["rows"] == len(ATTACKS)
    assert "language_only" in result.card["metrics"]["baselines_on_test"]
    assert result.card["training"]["source_power"] == 0.5
    assert result.card["training"]["language_power"] == 1.0
    card = render_card(result.card)
    assert "Held out by source" in card and "language alone" in card
    # Without folds the card has no such section, and the weights are the same.
    plain = train_model([data], seed="t", bits=14, augment=False, regularisation_grid=(1e-3,))
    assert "held_out_by_source" not in plain.card["metrics"] and plain.weights == result.weights
