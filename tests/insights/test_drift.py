"""Semantic drift: under its threshold for identical distributions, rising monotonically with a
synthetic shift, never across embedding models; the sampler's sums round-trip through the database."""

from __future__ import annotations

import zlib
from datetime import timedelta

import numpy as np
import pytest

from bastion.config.insights_settings import InsightsSettings
from bastion.insights import drift
from bastion.insights.aggregate import floor
from bastion.store.db import Database
from tests.insights.synthetic import BASE, insert, records

DIM = 32
SETTINGS = InsightsSettings()


def sample(rng: np.random.Generator, centre: np.ndarray, n: int, model: str = "m") -> drift.VectorSum:
    return drift.unit_sum(model, (centre + rng.normal(0.0, 1.0, size=(n, DIM))).tolist())


def test_identical_distributions_stay_under_the_threshold() -> None:
    rng = np.random.default_rng(7)
    centre = rng.normal(0.0, 1.0, DIM)
    for _ in range(20):
        baseline = [sample(rng, centre, 40) for _ in range(24)]
        report = drift.report(sample(rng, centre, 40), baseline, SETTINGS)
        assert report["drift"] is not None
        assert not report["drifted"], report
        assert report["threshold"] <= SETTINGS.alerts.semantic_drift


def test_drift_rises_monotonically_with_a_shift() -> None:
    rng = np.random.default_rng(11)
    centre = rng.normal(0.0, 1.0, DIM)
    direction = rng.normal(0.0, 1.0, DIM)
    baseline = [sample(rng, centre, 200) for _ in range(24)]
    values = []
    for step in range(8):
        window = sample(np.random.default_rng(99), centre + direction * step * 0.5, 400)
        values.append(drift.report(window, baseline, SETTINGS)["drift"])
    assert values == sorted(values) and values[-1] > values[0]
    assert drift.report(sample(rng, centre + direction * 4, 400), baseline, SETTINGS)["drifted"]


def test_vectors_of_two_embedding_models_are_never_compared() -> None:
    rng = np.random.default_rng(1)
    centre = np.ones(DIM)
    with pytest.raises(ValueError, match="different embedding models"):
        drift.distance(sample(rng, centre, 5, "minilm"), sample(rng, centre, 5, "other"))
    with pytest.raises(ValueError, match="different embedding models"):
        drift.report(sample(rng, centre, 5, "minilm"), [sample(rng, centre, 5, "other")] * 2, SETTINGS)


def test_an_empty_window_or_baseline_has_no_drift() -> None:
    assert drift.report(None, [], SETTINGS)["drift"] is None
    assert drift.report(None, [], SETTINGS)["drifted"] is False


def _fake_embed(shift: float) -> drift.EmbedTexts:
    async def embed(texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            out.append((np.ones(DIM) + rng.normal(0.0, 1.0, DIM) + shift * np.arange(DIM) / DIM).tolist())
        return out

    return embed


async def test_sampled_sums_round_trip_through_the_database(database: Database) -> None:
    rows = records(400, seed=5, span_s=86400)
    for i, r in enumerate(rows):
        r["content_mode"] = "full"
        r["response_text"] = f"answer {i}" if r["status"] < 400 else None
        r["tenant_id"] = "tenant_a"
    await insert(database, rows)
    sampler = drift.DriftSampler(database, SETTINGS, _fake_embed(0.0), "fake-embedder")
    buckets = sorted({floor(BASE + timedelta(seconds=r["ts"] - BASE.timestamp()), "5m") for r in rows})
    embedded = await sampler.recompute(buckets)
    assert 0 < embedded <= sum(1 for r in rows if r["response_text"])
    assert await sampler.recompute(buckets) == embedded  # recomputing replaces, never adds
    since, until = BASE + timedelta(hours=18), BASE + timedelta(hours=24)
    report = await drift.drift_report(database, SETTINGS, "tenant_a", since, until, baseline=(BASE, since))
    assert report["embedding_model"] == "fake-embedder"
    assert report["window_samples"] > 0 and report["baseline_samples"] > 0
    assert not report["drifted"]
    assert (await drift.drift_report(database, SETTINGS, "tenant_b", since, until))["drift"] is None


async def test_red_team_answers_are_not_sampled(database: Database) -> None:
    rows = records(60, seed=6, span_s=600)
    for i, r in enumerate(rows):
        r["content_mode"] = "full"
        r["status"] = 200
        r["response_text"] = f"answer {i}"
        r["extra"] = {"redteam_run": "rt_1"} if i % 2 else None
    await insert(database, rows)
    seen: list[str] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return [[1.0] * DIM for _ in texts]

    sampler = drift.DriftSampler(database, SETTINGS, embed, "fake-embedder")
    buckets = sorted({floor(BASE + timedelta(seconds=r["ts"] - BASE.timestamp()), "5m") for r in rows})
    await sampler.recompute(buckets)
    assert seen and all(int(text.split()[1]) % 2 == 0 for text in seen)
