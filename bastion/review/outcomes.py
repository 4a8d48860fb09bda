"""What reviews add up to: agreement and pass rates of a set of reviews (a batch, a dataset
version's sources), and whether an item is approved for training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.review.agreement import agreement_by_dimension, krippendorff_alpha, wilson
from bastion.review.model import APPROVE, PAIRWISE
from bastion.review.models import DIMENSIONS, Review


def agreement_report(reviews: Sequence[Review], kind: str, min_quality: float) -> dict[str, Any]:
    """Agreement per dimension and pass rates (Wilson 95%) of a set of reviews."""
    if kind == PAIRWISE:
        units: dict[str, dict[str, str]] = {}
        for review in reviews:
            if review.preferred:
                units.setdefault(review.item_id, {})[review.reviewer] = review.preferred
        raters = sorted({r for unit in units.values() for r in unit})
        alpha = krippendorff_alpha([[unit.get(r) for r in raters] for unit in units.values()], "nominal")
        chose_a = sum(1 for r in reviews if r.preferred == "a")
        return {
            "kind": kind,
            "reviews": len(reviews),
            "preference": {"krippendorff_alpha": alpha, "alpha_metric": "nominal", "items": len(units)},
            "first_preferred": wilson(chose_a, sum(1 for r in reviews if r.preferred)).to_json(),
        }
    ratings: dict[str, dict[str, dict[str, int]]] = {}
    for review in reviews:
        scores = {d: getattr(review, d) for d in DIMENSIONS if getattr(review, d) is not None}
        ratings.setdefault(review.item_id, {})[review.reviewer] = scores
    approved = sum(1 for r in reviews if r.verdict == APPROVE)
    quality_ok = sum(1 for r in reviews if _quality(r) >= min_quality)
    by_item: dict[str, list[Review]] = {}
    for review in reviews:
        by_item.setdefault(review.item_id, []).append(review)
    items_pass = sum(1 for group in by_item.values() if item_passes(group, min_quality))
    dimensions = agreement_by_dimension(ratings, DIMENSIONS)
    for name, result in dimensions.items():
        values = [getattr(r, name) for r in reviews if getattr(r, name) is not None]
        result["mean"] = sum(values) / len(values) if values else None
        result["at_least_3"] = wilson(sum(1 for v in values if v >= 3), len(values)).to_json()  # type: ignore[assignment]
    return {
        "kind": kind,
        "reviews": len(reviews),
        "dimensions": dimensions,
        "verdicts": {v: sum(1 for r in reviews if r.verdict == v) for v in ("approve", "reject", "needs-edit")},
        "approval_rate": wilson(approved, len(reviews)).to_json(),
        "quality_pass_rate": {**wilson(quality_ok, len(reviews)).to_json(), "threshold": min_quality},
        "item_pass_rate": {**wilson(items_pass, len(by_item)).to_json(), "threshold": min_quality},
    }


def _quality(review: Review) -> float:
    values = [getattr(review, d) for d in DIMENSIONS if getattr(review, d) is not None]
    return sum(values) / len(values) if values else 0.0


def item_passes(reviews: Sequence[Review], min_quality: float, min_reviews: int = 1) -> bool:
    """An item is approved for training when it has ``min_reviews`` reviews, its mean quality
    (over reviewers and dimensions) is at least ``min_quality``, and more reviewers approved it
    (or corrected it: an edit is an approval of the edit) than rejected it."""
    if len(reviews) < min_reviews or not reviews:
        return False
    quality = sum(_quality(r) for r in reviews) / len(reviews)
    yes = sum(1 for r in reviews if r.verdict == APPROVE or (r.verdict == "needs-edit" and r.corrected_answer))
    return quality >= min_quality and yes * 2 > len(reviews)
