"""Sources in training the injection model: balancing them, and measuring on sources never seen.

A random split puts rows of every source on both sides, so a model that learns a source's style
(its carrier documents, its templates, its mix of languages) looks better on the test rows than it
is on text from elsewhere. Two remedies:

- ``train.source_balance``: a row's training weight is divided by ``n ** power``, ``n`` being the number of
  training rows of its source with its label; each label keeps its total weight. With ``power`` 0.5
  a source of 900 rows weighs three times one of 100, not nine times.
- ``source_folds`` and ``holdout_by_source``: the sources (the repository part of a row's ``source``,
  before the first ``:``) are dealt into folds so each fold holds a share of the attacks and of the
  benign rows; for each fold a model is fitted on the other folds' training rows, calibrated on
  their calibration rows, and scored on every row of the fold's sources. The pooled rates are the
  best proxy for data the model never saw (public benchmarks, other traffic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from bastion.guard.train import Row, calibrated_thresholds, carrier_source_of, source_of

#: Folds of sources for ``holdout_by_source``.
SOURCE_FOLDS = 5
#: Sources whose rows share text and are held out together: spikee's attacks are built inside XQuAD
#: paragraphs (the corpus's SOURCES.md), so holding out XQuAD's benign paragraphs while training on
#: spikee would measure "XQuAD paragraph means attack", not generalisation.
HELD_OUT_TOGETHER: tuple[frozenset[str], ...] = (frozenset({"WithSecureLabs/spikee", "google-deepmind/xquad"}),)
#: Longest training attack the augmented rows may quote (``train.augmented_rows``).
_QUOTED_CHARS = 300

#: A held-out row's key: its source and text.
HeldOutKey = tuple[str, str]


class HeldOutHit(NamedTuple):
    """What the fold model that never saw a row's source made of it. Two tiers' hits on the same
    rows give the rates of using both; the scores, one threshold swept over all folds."""

    kind: str
    flagged: bool
    blocked: bool
    score: float


HeldOutHits = dict[HeldOutKey, HeldOutHit]

#: ``train indices -> scorer over indices`` and ``(calibration indices, scores) -> (flag, block)``.
FitFunction = Callable[[list[int]], Callable[[list[int]], list[float]]]
ThresholdFunction = Callable[[list[int], list[float]], tuple[float, float]]


def source_folds(
    rows: Sequence[Row], folds: int = SOURCE_FOLDS, together: Sequence[frozenset[str]] = HELD_OUT_TOGETHER
) -> list[list[str]]:
    """Sources dealt into ``folds`` groups: largest attack sources first, each to the fold with the
    fewest attacks so far; then the sources with benign rows only, by benign count. The sources of
    each set in ``together`` stay in one fold. Deterministic (ties by name); the project's generated
    rows (``bastion:augment``) are never held out."""
    positives: Counter[str] = Counter()
    negatives: Counter[str] = Counter()
    for row in rows:
        if row.source.startswith("bastion:"):
            continue
        name = source_of(row)
        positives[name] += row.label
        negatives[name] += 1 - row.label
    # Linked sources move as one unit, under the name of its first member.
    unit_of = {name: name for name in positives}
    for linked in together:
        present = sorted(name for name in linked if name in unit_of)
        for name in present:
            unit_of[name] = present[0]
    members: dict[str, list[str]] = {}
    unit_pos: Counter[str] = Counter()
    unit_neg: Counter[str] = Counter()
    for name, unit in unit_of.items():
        members.setdefault(unit, []).append(name)
        unit_pos[unit] += positives[name]
        unit_neg[unit] += negatives[name]
    groups: list[list[str]] = [[] for _ in range(folds)]
    pos_load = [0] * folds
    neg_load = [0] * folds
    with_attacks = sorted((u for u in members if unit_pos[u]), key=lambda u: (-unit_pos[u], u))
    benign_only = sorted((u for u in members if not unit_pos[u]), key=lambda u: (-unit_neg[u], u))
    for unit in with_attacks:
        target = min(range(folds), key=lambda k: (pos_load[k], neg_load[k], k))
        groups[target].extend(members[unit])
        pos_load[target] += unit_pos[unit]
        neg_load[target] += unit_neg[unit]
    for unit in benign_only:
        target = min(range(folds), key=lambda k: (neg_load[k], k))
        groups[target].extend(members[unit])
        neg_load[target] += unit_neg[unit]
    return [sorted(group) for group in groups if group]


def _kind_rates(kinds: Sequence[str], hits: Sequence[bool]) -> dict[str, Any]:
    """Per kind, the rows and the share at or above the threshold."""
    totals: Counter[str] = Counter()
    above: Counter[str] = Counter()
    for kind, hit in zip(kinds, hits, strict=True):
        totals[kind] += 1
        above[kind] += hit
    return {
        kind: {"rows": totals[kind], "at_or_above": round(above[kind] / totals[kind], 4)} for kind in sorted(totals)
    }


def _rates(rows: Sequence[Row], hits: Sequence[bool]) -> dict[str, Any]:
    return _kind_rates([row.kind for row in rows], hits)


def either_tier_rates(first: HeldOutHits, second: HeldOutHits) -> dict[str, Any]:
    """Pooled rates on the rows both tiers held out when a row counts if either tier's fold model
    put it at or above its threshold (the guard's ``injection_deep: always``)."""
    keys = sorted(first.keys() & second.keys())
    kinds = [first[key].kind for key in keys]
    return {
        "rows": len(keys),
        "pooled_at_flag": _kind_rates(kinds, [first[key].flagged or second[key].flagged for key in keys]),
        "pooled_at_block": _kind_rates(kinds, [first[key].blocked or second[key].blocked for key in keys]),
    }


def holdout_by_source(
    rows: Sequence[Row],
    train_idx: Sequence[int],
    calib_idx: Sequence[int],
    fit: FitFunction,
    thresholds: ThresholdFunction | None = None,
    *,
    folds: int = SOURCE_FOLDS,
    hits: HeldOutHits | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    """Fit, calibrate and score once per fold of sources (see the module docstring).

    Augmented rows that quote an attack of the held-out sources, or are built on one of their
    requests, are left out of that fold's training. Returns per fold and pooled, at each fold's
    ``flag`` and ``block``, the share of rows of each kind at or above it (recall for attacks,
    false-positive rate for benign rows); fills ``hits``, when given, with every held-out row's
    outcome. ``thresholds`` defaults to the
    training's own calibration (``train.calibrated_thresholds`` on ``rows``)."""
    if thresholds is None:

        def thresholds(indices: list[int], scores: list[float]) -> tuple[float, float]:
            return calibrated_thresholds(rows, indices, scores)

    pooled_rows: list[Row] = []
    pooled_flag: list[bool] = []
    pooled_block: list[bool] = []
    per_fold = []
    for group in source_folds([rows[i] for i in train_idx], folds):
        held_set = set(group)
        held = [i for i, row in enumerate(rows) if source_of(row) in held_set and not row.source.startswith("bastion:")]
        quoted = [rows[i].text for i in held if rows[i].label and len(rows[i].text) <= _QUOTED_CHARS]

        def built_on_held_out(row: Row, quoted: list[str] = quoted, held_set: set[str] = held_set) -> bool:
            """A generated row whose carrier, or quoted attack, is a row of a held-out source."""
            carrier = carrier_source_of(row)
            if carrier is not None:
                return carrier in held_set
            return row.source.startswith("bastion:") and any(text in row.text for text in quoted)

        fold_train = [i for i in train_idx if source_of(rows[i]) not in held_set and not built_on_held_out(rows[i])]
        fold_calib = [i for i in calib_idx if source_of(rows[i]) not in held_set]
        score = fit(fold_train)
        flag, block = thresholds(fold_calib, score(fold_calib))
        held_scores = score(held)
        held_rows = [rows[i] for i in held]
        flags = [s >= flag for s in held_scores]
        blocks = [s >= block for s in held_scores]
        pooled_rows.extend(held_rows)
        pooled_flag.extend(flags)
        pooled_block.extend(blocks)
        if hits is not None:
            for row, flagged, blocked, held_score in zip(held_rows, flags, blocks, held_scores, strict=True):
                hits[(row.source, row.text)] = HeldOutHit(row.kind, flagged, blocked, held_score)
        fold = {
            "sources": group,
            "thresholds": {"flag": round(flag, 4), "block": round(block, 4)},
            "at_flag": _rates(held_rows, flags),
            "at_block": _rates(held_rows, blocks),
        }
        per_fold.append(fold)
        progress(f"held out {', '.join(group)}: at flag {fold['at_flag']}")
    return {
        "folds": per_fold,
        "pooled_at_flag": _rates(pooled_rows, pooled_flag),
        "pooled_at_block": _rates(pooled_rows, pooled_block),
    }
