"""Metrics of an experiment from the ledger (and client feedback), per variant.

The ledger is read once per report: one row per (variant, unit) with that unit's request count and
sums. Every metric is then the ratio of two per-unit sums, numerator M over denominator D, whose
per-variant mean is ``sum(M) / sum(D)`` and whose variance is the delta method's
(``bastion.stats.ratio``). With the request as the unit every D is 1 and this is the plain mean and
sample variance; with users, sessions or keys as the unit it accounts for a unit's requests being
alike (GrowthBook treats per-request metrics of per-user experiments the same way).

==================  ========  =========================================  ======================
metric              kind      M / D per unit                              better
==================  ========  =========================================  ======================
error_rate          binomial  requests with status >= 400 / requests      lower
latency_ms          mean      sum of latencies / requests                 lower
ttft_ms             mean      sum of times to first token / streamed      lower
prompt_tokens       mean      prompt tokens / requests                    lower
completion_tokens   mean      completion tokens / requests                lower
total_tokens        mean      prompt + completion tokens / requests       lower
cost_usd            mean      cost / requests                             lower
guard_flag_rate     binomial  flagged requests / requests                 lower
feedback            mean      feedback scores / scored requests           higher
review_score        mean      review scores / reviewed requests           higher
cost_per_success    ratio     cost / successful requests                  lower
==================  ========  =========================================  ======================

Feedback is a thumbs up (1) or down (0), or the client's number; several scores of one interaction
count as their mean. A review score is a human review's mean over the six dimensions (1-5,
docs/REVIEW.md); several reviews of one interaction count as their mean. The review tables are read
by name: human review sits above this package and may not be installed in a given database yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Integer, case, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.experiments.models import Feedback
from bastion.stats.ratio import RatioSums
from bastion.store.models import Interaction

Kind = Literal["binomial", "mean", "ratio"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: Kind
    #: Lower is better (latency, cost, errors).
    inverse: bool
    numerator: str
    denominator: str


METRICS: Final[dict[str, MetricDef]] = {
    m.name: m
    for m in (
        MetricDef("error_rate", "binomial", True, "errors", "requests"),
        MetricDef("latency_ms", "mean", True, "latency", "requests"),
        MetricDef("ttft_ms", "mean", True, "ttft", "streamed"),
        MetricDef("prompt_tokens", "mean", True, "prompt_tokens", "requests"),
        MetricDef("completion_tokens", "mean", True, "completion_tokens", "requests"),
        MetricDef("total_tokens", "mean", True, "total_tokens", "requests"),
        MetricDef("cost_usd", "mean", True, "cost", "requests"),
        MetricDef("guard_flag_rate", "binomial", True, "flagged", "requests"),
        MetricDef("feedback", "mean", False, "feedback", "scored"),
        MetricDef("review_score", "mean", False, "review", "reviewed"),
        MetricDef("cost_per_success", "ratio", True, "cost", "successes"),
    )
}


@dataclass(frozen=True, slots=True)
class UnitTotals:
    """One unit's requests in one variant, summed."""

    variant: str
    unit: str
    requests: int
    errors: int
    latency: float
    streamed: int
    ttft: float
    prompt_tokens: float
    completion_tokens: float
    cost: float
    flagged: int
    scored: int
    feedback: float
    reviewed: int = 0
    review: float = 0.0

    @property
    def successes(self) -> int:
        return self.requests - self.errors

    @property
    def total_tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens

    def value(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(slots=True)
class _Sums:
    n: int = 0
    m: float = 0.0
    m2: float = 0.0
    d: float = 0.0
    d2: float = 0.0
    md: float = 0.0

    def add(self, m: float, d: float) -> None:
        self.n += 1
        self.m += m
        self.m2 += m * m
        self.d += d
        self.d2 += d * d
        self.md += m * d

    def ratio(self) -> RatioSums:
        return RatioSums(self.n, self.m, self.m2, self.d, self.d2, self.md)


@dataclass(frozen=True, slots=True)
class VariantData:
    """A variant's units and requests, and each metric's per-unit sums."""

    name: str
    units: int
    requests: int
    sums: dict[str, RatioSums]


def summarise(variants: Sequence[str], totals: Iterable[UnitTotals], metrics: Sequence[str]) -> list[VariantData]:
    """Per variant (in ``variants`` order), the ratio sums of every metric over units with D > 0."""
    sums = {v: {m: _Sums() for m in metrics} for v in variants}
    units = dict.fromkeys(variants, 0)
    requests = dict.fromkeys(variants, 0)
    for row in totals:
        if row.variant not in sums:  # a variant renamed or removed since: not part of the report
            continue
        units[row.variant] += 1
        requests[row.variant] += row.requests
        for name in metrics:
            metric = METRICS[name]
            d = row.value(metric.denominator)
            if d > 0:
                sums[row.variant][name].add(row.value(metric.numerator), d)
    return [VariantData(v, units[v], requests[v], {m: s.ratio() for m, s in sums[v].items()}) for v in variants]


#: The six review dimensions (docs/REVIEW.md), each 1-5; a pairwise review has none.
REVIEW_DIMENSIONS: Final = ("relevance", "accuracy", "helpfulness", "safety", "coherence", "completeness")
_REVIEWS = table("reviews", column("tenant_id"), column("item_id"), *(column(name) for name in REVIEW_DIMENSIONS))
_REVIEW_ITEMS = table("review_items", column("id"), column("tenant_id"), column("interaction_id"))


def _review_scores(tenant_id: str) -> Any:
    """Per interaction: the mean over its single reviews of each review's mean dimension."""
    per_review = sum((_REVIEWS.c[name] for name in REVIEW_DIMENSIONS[1:]), _REVIEWS.c[REVIEW_DIMENSIONS[0]])
    return (
        select(
            _REVIEW_ITEMS.c.interaction_id.label("interaction_id"),
            func.avg(per_review / float(len(REVIEW_DIMENSIONS))).label("score"),
        )
        .select_from(_REVIEWS.join(_REVIEW_ITEMS, _REVIEW_ITEMS.c.id == _REVIEWS.c.item_id))
        .where(_REVIEWS.c.tenant_id == tenant_id, _REVIEW_ITEMS.c.tenant_id == tenant_id)
        .group_by(_REVIEW_ITEMS.c.interaction_id)
        .subquery()
    )


def _flag(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


async def unit_totals(session: AsyncSession, tenant_id: str, experiment_id: str) -> list[UnitTotals]:
    """The ledger's rows of the experiment, summed per (variant, unit), with their feedback and
    review scores."""
    i = Interaction.__table__.c
    scores = (
        select(Feedback.interaction_id.label("interaction_id"), func.avg(Feedback.score).label("score"))
        .where(Feedback.tenant_id == tenant_id)
        .group_by(Feedback.interaction_id)
        .subquery()
    )
    reviews = _review_scores(tenant_id)
    query = (
        select(
            i.experiment_variant,
            i.experiment_unit,
            func.count(),
            _flag(i.status >= 400),
            func.coalesce(func.sum(i.latency_ms), 0.0),
            func.count(i.ttft_ms),
            func.coalesce(func.sum(i.ttft_ms), 0.0),
            func.coalesce(func.sum(i.prompt_tokens), 0),
            func.coalesce(func.sum(i.completion_tokens), 0),
            func.coalesce(func.sum(i.cost_usd), 0.0),
            _flag(i.flagged.cast(Integer) == 1),
            func.count(scores.c.score),
            func.coalesce(func.sum(scores.c.score), 0.0),
            func.count(reviews.c.score),
            func.coalesce(func.sum(reviews.c.score), 0.0),
        )
        .select_from(
            Interaction.__table__.outerjoin(scores, scores.c.interaction_id == i.id).outerjoin(
                reviews, reviews.c.interaction_id == i.id
            )
        )
        .where(i.tenant_id == tenant_id, i.experiment_id == experiment_id, i.experiment_variant.is_not(None))
        .group_by(i.experiment_variant, i.experiment_unit)
    )
    result = await session.execute(query)
    return [
        UnitTotals(
            variant=row[0],
            unit=row[1] or "",
            requests=int(row[2]),
            errors=int(row[3] or 0),
            latency=float(row[4]),
            streamed=int(row[5]),
            ttft=float(row[6]),
            prompt_tokens=float(row[7]),
            completion_tokens=float(row[8]),
            cost=float(row[9]),
            flagged=int(row[10] or 0),
            scored=int(row[11]),
            feedback=float(row[12]),
            reviewed=int(row[13]),
            review=float(row[14]),
        )
        for row in result
    ]
