"""Combining retrievers and re-ranking: reciprocal-rank fusion, normalised linear fusion, MMR.

Fused scores order results; they are not comparable across queries (an RRF sum is tiny and flat:
1/61 + 1/62 ...), which is why the score threshold applies to the dense cosine instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Ranked = Sequence[tuple[int, float]]


def rrf(lists: Sequence[Ranked], weights: Sequence[float], k: int = 60) -> list[tuple[int, float]]:
    """sum over retrievers of weight / (k + rank), best first."""
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, (item, _score) in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


def linear(lists: Sequence[Ranked], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores (an item absent from a list gets 0 there)."""
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        if not ranked:
            continue
        scores = [score for _item, score in ranked]
        low, high = min(scores), max(scores)
        span = high - low
        for item, score in ranked:
            normal = (score - low) / span if span > 0 else 1.0
            fused[item] = fused.get(item, 0.0) + weight * normal
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


def mmr(ranked: Ranked, similarity: Callable[[int, int], float], k: int, lambda_: float) -> list[tuple[int, float]]:
    """Maximal marginal relevance: repeatedly take the candidate maximising
    ``lambda * relevance - (1 - lambda) * max similarity to those taken``; relevance is the
    candidate's score over the best one's (see ``_relevance``). Lambda 1 keeps the input order."""
    if not ranked:
        return []
    relevance = _relevance(ranked)
    order = {item: index for index, (item, _score) in enumerate(ranked)}
    remaining = [item for item, _score in ranked]
    chosen: list[int] = []
    closest: dict[int, float] = dict.fromkeys(remaining, -1.0)
    original = dict(ranked)
    while remaining and len(chosen) < k:
        best = max(
            remaining,
            key=lambda item: (
                lambda_ * relevance[item] - (1.0 - lambda_) * (closest[item] if chosen else 0.0),
                -order[item],
            ),
        )
        chosen.append(best)
        remaining.remove(best)
        for item in remaining:
            closest[item] = max(closest[item], similarity(item, best))
    return [(item, original[item]) for item in chosen]


def _relevance(ranked: Ranked) -> dict[int, float]:
    """Scores scaled into [0, 1] by the best one (min-max when some are negative). Not min-max
    always: over a short list that would put the last candidate at 0 however relevant it is, and
    any near-duplicate of the first would then beat it."""
    scores = [score for _item, score in ranked]
    low, high = min(scores), max(scores)
    if low >= 0:
        return {item: score / high if high > 0 else 1.0 for item, score in ranked}
    span = high - low
    return {item: (score - low) / span if span > 0 else 1.0 for item, score in ranked}
