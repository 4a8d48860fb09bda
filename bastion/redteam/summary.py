"""A run's summary: the figures the dashboard shows per run (``GET /api/v1/insights/redteam``).

Computed from the attempts of a report (ours, or one converted from garak), each a mapping with
``attack_id``, ``category`` and ``success`` (True, False, or None for an attempt without an
answer, left out of every figure).

Fragility (docs/REDTEAM.md, "Fragility"): the attempts of one attack are semantically equivalent
variants of the same request (its paraphrases, casings, whitespace and encodings). An attack's
fragility is the share of its pairs of variants whose outcomes differ: with ``n`` judged attempts
of which ``s`` succeeded, ``s * (n - s) / (n * (n - 1) / 2)``. 0: every wording gives the same
outcome; 1: only possible with two variants that disagree. A run's fragility is the mean over its
attacks with at least two judged attempts; None when it has none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def attack_fragility(outcomes: Iterable[bool]) -> float | None:
    """The share of pairs of outcomes that differ; None with fewer than two outcomes."""
    values = list(outcomes)
    n, s = len(values), sum(values)
    if n < 2:
        return None
    return round(s * (n - s) / (n * (n - 1) / 2), 6)


def run_fragility(attempts: Iterable[Mapping[str, Any]]) -> float | None:
    by_attack: dict[str, list[bool]] = defaultdict(list)
    for attempt in attempts:
        if attempt.get("success") is not None:
            by_attack[str(attempt["attack_id"])].append(bool(attempt["success"]))
    scores = [score for outcomes in by_attack.values() if (score := attack_fragility(outcomes)) is not None]
    return round(sum(scores) / len(scores), 6) if scores else None


def summarise(attempts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``attempts`` (judged ones only), ``success_rate`` (0.0 without any), ``by_category``
    (``attempts``, ``successes``, ``rate``) and ``fragility``."""
    listed = list(attempts)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for attempt in listed:
        if attempt.get("success") is None:
            continue
        group = counts[str(attempt["category"])]
        group[0] += 1
        group[1] += int(bool(attempt["success"]))
    judged = sum(trials for trials, _ in counts.values())
    successes = sum(hits for _, hits in counts.values())
    return {
        "attempts": judged,
        "success_rate": round(successes / judged, 6) if judged else 0.0,
        "by_category": {
            category: {"attempts": trials, "successes": hits, "rate": round(hits / trials, 6)}
            for category, (trials, hits) in sorted(counts.items())
        },
        "fragility": run_fragility(listed),
    }
