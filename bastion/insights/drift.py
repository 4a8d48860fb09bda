"""Semantic drift: how far the answers of a window have moved from those of a baseline window,
in the space of a local embedding model.

Each answer sampled is embedded and normalised to unit length; a bucket keeps the sum of its unit
vectors and their count (``insight_drift``, 5-minute buckets), so the centroid of any set of
buckets is the direction of the sum of their sums. Formulas (docs/INSIGHTS.md):

* drift = 1 - cos(c_window, c_baseline), the cosine distance of the two centroids, in [0, 2];
* the threshold comes from the baseline's own variability: the baseline's hours, each compared
  with the centroid of the other hours (leave one out), give distances d_1..d_k; the threshold is
  mean(d) + 3 sd(d), at least ``drift.min_threshold`` and at most ``alerts.semantic_drift``;
* vectors of different embedding models are never compared: every sum carries its model's name,
  and a comparison across two names is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Table, and_, delete, insert, or_, select

from bastion.config.insights_settings import InsightsSettings
from bastion.errors import InvalidRequest
from bastion.insights import classify, tables
from bastion.insights.aggregate import FIVE_MINUTES, floor
from bastion.store.db import Database
from bastion.store.models import Interaction

EmbedTexts = Callable[[list[str]], Awaitable[list[list[float]]]]
_LEDGER: Table = Interaction.__table__  # type: ignore[assignment]  # declarative tables are Table objects
_MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class VectorSum:
    """Sum of unit vectors and how many, from one embedding model."""

    embedding_model: str
    total: np.ndarray
    count: int

    def centroid(self) -> np.ndarray | None:
        norm = float(np.linalg.norm(self.total))
        return None if self.count == 0 or norm == 0.0 else self.total / norm


def unit_sum(embedding_model: str, vectors: Sequence[Sequence[float]]) -> VectorSum:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return VectorSum(embedding_model, (matrix / norms).sum(axis=0), len(vectors))


def add(sums: Sequence[VectorSum]) -> VectorSum | None:
    if not sums:
        return None
    _same_model(sums)
    return VectorSum(sums[0].embedding_model, np.sum([s.total for s in sums], axis=0), sum(s.count for s in sums))


def _same_model(sums: Sequence[VectorSum]) -> None:
    names = {s.embedding_model for s in sums}
    if len(names) > 1:
        raise ValueError(f"vectors of different embedding models cannot be compared: {sorted(names)}")


def distance(a: VectorSum, b: VectorSum) -> float | None:
    """Cosine distance of the two centroids; None when either is empty."""
    _same_model([a, b])
    ca, cb = a.centroid(), b.centroid()
    if ca is None or cb is None:
        return None
    return round(float(max(0.0, 1.0 - float(np.dot(ca, cb)))), 6)


def threshold(baseline_parts: Sequence[VectorSum], floor_value: float, ceiling: float) -> float:
    """mean + 3 sd of each baseline part's leave-one-out distance, within [floor, ceiling]."""
    parts = [p for p in baseline_parts if p.count > 0]
    if len(parts) < 2:
        return ceiling
    whole = add(parts)
    assert whole is not None
    distances = []
    for part in parts:
        rest = VectorSum(whole.embedding_model, whole.total - part.total, whole.count - part.count)
        d = distance(part, rest)
        if d is not None:
            distances.append(d)
    if not distances:
        return ceiling
    value = float(np.mean(distances) + 3.0 * np.std(distances))
    return round(min(ceiling, max(floor_value, value)), 6)


def report(window: VectorSum | None, baseline_parts: Sequence[VectorSum], settings: InsightsSettings) -> dict[str, Any]:
    """Drift of ``window`` against the baseline (the union of ``baseline_parts``)."""
    baseline = add(baseline_parts)
    limit = threshold(baseline_parts, settings.drift.min_threshold, settings.alerts.semantic_drift)
    value = distance(window, baseline) if window is not None and baseline is not None else None
    return {
        "embedding_model": source.embedding_model if (source := window or baseline) is not None else None,
        "drift": value,
        "threshold": limit,
        "drifted": value is not None and value > limit,
        "window_samples": window.count if window else 0,
        "baseline_samples": baseline.count if baseline else 0,
    }


def _decode(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f8").copy()


class DriftSampler:
    """Embeds up to ``samples_per_bucket`` answers (the first by request id) per 5-minute bucket,
    tenant, model and prompt version, and replaces the bucket's sums: idempotent like the roll-up."""

    def __init__(self, db: Database, settings: InsightsSettings, embed: EmbedTexts, embedding_model: str) -> None:
        self.db = db
        self.settings = settings
        self.embed = embed
        self.embedding_model = embedding_model

    async def recompute(self, buckets: Sequence[datetime]) -> int:
        """Recompute the drift sums of these 5-minute buckets; how many answers were embedded."""
        embedded = 0
        limit = self.settings.drift.samples_per_bucket
        for bucket in buckets:
            groups: dict[tuple[str, str, str, int], list[str]] = {}
            query = (
                select(
                    _LEDGER.c.tenant_id, _LEDGER.c.model, _LEDGER.c.prompt_id, _LEDGER.c.prompt_version,
                    _LEDGER.c.response_text, _LEDGER.c.extra,
                )
                .where(
                    _LEDGER.c.created_at >= bucket,
                    _LEDGER.c.created_at < bucket + FIVE_MINUTES,
                    _LEDGER.c.response_text.is_not(None),
                    _LEDGER.c.status < 400,
                )
                .order_by(_LEDGER.c.id)
            )  # fmt: skip
            async with self.db.engine.connect() as connection:
                for tenant, model, prompt, version, text, extra in await connection.execute(query):
                    if classify.red_team(extra):
                        continue
                    key = (tenant or "", model or "", prompt or "", int(version or 0))
                    texts = groups.setdefault(key, [])
                    if len(texts) < limit and text and text.strip():
                        texts.append(text[:_MAX_TEXT])
            rows: list[Any] = []
            for key, texts in sorted(groups.items()):
                if not texts:
                    continue
                sums = unit_sum(self.embedding_model, await self.embed(texts))
                embedded += sums.count
                tenant, model, prompt, version = key
                rows.append(
                    {"bucket": bucket, "tenant_id": tenant, "model": model, "prompt_id": prompt,
                     "prompt_version": version, "embedding_model": self.embedding_model, "samples": sums.count,
                     "vector_sum": sums.total.astype("<f8").tobytes()}
                )  # fmt: skip
            async with self.db.engine.begin() as connection:
                await connection.execute(delete(tables.drift).where(tables.drift.c.bucket == bucket))
                if rows:
                    await connection.execute(insert(tables.drift), rows)
        return embedded


async def drift_report(
    db: Database,
    settings: InsightsSettings,
    tenant_id: str,
    since: datetime,
    until: datetime,
    *,
    baseline: tuple[datetime, datetime] | None = None,
    model: str | None = None,
    prompt_id: str | None = None,
    embedding_model: str | None = None,
) -> dict[str, Any]:
    """Drift of ``[since, until)`` against the baseline (default: the ``drift.baseline_days`` before)."""
    start, end = baseline or (since - timedelta(days=settings.drift.baseline_days), since)
    if start >= end:
        raise InvalidRequest("Invalid request: the baseline must end after it starts.", param="baseline_from")
    d = tables.drift
    conditions = [d.c.tenant_id == tenant_id]
    if model is not None:
        conditions.append(d.c.model == model)
    if prompt_id is not None:
        conditions.append(d.c.prompt_id == prompt_id)
    async with db.engine.connect() as connection:
        if embedding_model is None:
            latest = (
                await connection.execute(
                    select(d.c.embedding_model).where(*conditions).order_by(d.c.bucket.desc()).limit(1)
                )
            ).first()
            embedding_model = latest[0] if latest else None
        rows = []
        if embedding_model is not None:
            span = or_(and_(d.c.bucket >= start, d.c.bucket < end), and_(d.c.bucket >= since, d.c.bucket < until))
            query = select(d.c.bucket, d.c.samples, d.c.vector_sum).where(
                *conditions, d.c.embedding_model == embedding_model, span
            )
            rows = list((await connection.execute(query)).all())
    window_parts: list[VectorSum] = []
    hours: dict[datetime, list[VectorSum]] = {}
    for bucket, samples, raw in rows:
        part = VectorSum(str(embedding_model), _decode(raw), int(samples))
        if since <= bucket < until:
            window_parts.append(part)
        else:
            hours.setdefault(floor(bucket, "1h"), []).append(part)
    baseline_parts = [s for h in sorted(hours) if (s := add(hours[h])) is not None]
    out = report(add(window_parts), baseline_parts, settings)
    out["embedding_model"] = embedding_model
    out["window"] = {"from": since.isoformat(), "to": until.isoformat()}
    out["baseline"] = {"from": start.isoformat(), "to": end.isoformat()}
    return out


__all__ = ["DriftSampler", "VectorSum", "distance", "drift_report", "report", "threshold", "unit_sum"]
