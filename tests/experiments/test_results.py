"""Results, reports and bandit updates over ledger rows seeded directly, on SQLite and PostgreSQL:
the numbers agree with ``bastion.stats`` computed here from the same per-unit data; SRM, Holm and
the decision follow the data; bandit weights are reproducible from the seed and kept in history."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from bastion.errors import Conflict
from bastion.experiments.analysis import (
    bandit_seed,
    experiment_results,
    update_all_bandits,
    update_bandit,
    weights_history,
)
from bastion.experiments.model import Arm, Variant
from bastion.experiments.models import Feedback
from bastion.experiments.report import text_report
from bastion.experiments.service import ExperimentService
from bastion.stats.bandits import thompson_beta
from bastion.stats.frequentist import welch_test
from bastion.stats.summary import ArmStats
from bastion.store.db import Database
from bastion.store.models import Interaction, new_id
from tests.vault.support import make_tenant

DEFINITION: dict[str, Any] = {
    "name": "latency",
    "target": {"model": "m"},
    "variants": [{"name": "control"}, {"name": "fast", "model": "m-fast"}],
    "unit": "user",
    "metrics": ["latency_ms", "error_rate", "feedback", "cost_per_success"],
    "method": "frequentist",
}


async def _seed(db: Database, tenant_id: str, experiment_id: str, rows: list[dict[str, Any]]) -> None:
    async with db.transaction() as session:
        for row in rows:
            feedback = row.pop("feedback", None)
            interaction = Interaction(
                id=new_id(), tenant_id=tenant_id, endpoint="chat", dialect="openai", model="m", stream=False,
                experiment_id=experiment_id, **row,
            )  # fmt: skip
            session.add(interaction)
            if feedback is not None:
                session.add(Feedback(id=new_id(), tenant_id=tenant_id, interaction_id=interaction.id,
                                     score=feedback, kind="score", actor="key:k"))  # fmt: skip


def _rows(rng: random.Random, variant: str, users: int, latency: float, error_p: float) -> list[dict[str, Any]]:
    rows = []
    for u in range(users):
        for _ in range(rng.randint(1, 3)):  # several requests per user
            error = rng.random() < error_p
            rows.append(
                {
                    "experiment_variant": variant,
                    "experiment_unit": f"{variant}-{u}",
                    "latency_ms": rng.gauss(latency, 20.0),
                    "status": 502 if error else 200,
                    "cost_usd": 0.001,
                    "feedback": rng.choice([1.0, 0.0]) if rng.random() < 0.5 else None,
                }
            )
    return rows


def _per_unit_latency(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    by_unit: dict[str, list[float]] = {}
    for row in rows:
        by_unit.setdefault(row["experiment_unit"], []).append(row["latency_ms"])
    return [sum(v) for v in by_unit.values()], [float(len(v)) for v in by_unit.values()]


async def test_results_agree_with_the_statistics_engine(database: Database) -> None:
    tenant_id = await make_tenant(database, "acme")
    service = ExperimentService(database)
    experiment = await service.create(tenant_id, DEFINITION)
    rng = random.Random(7)
    control, fast = _rows(rng, "control", 150, 300.0, 0.05), _rows(rng, "fast", 150, 280.0, 0.05)
    expected_requests = {"control": len(control), "fast": len(fast)}
    latencies = {"control": _per_unit_latency(control), "fast": _per_unit_latency(fast)}
    await _seed(database, tenant_id, experiment.id, [dict(r) for r in control + fast])
    other_tenant = await make_tenant(database, "globex")
    await _seed(database, other_tenant, experiment.id, _rows(rng, "fast", 30, 1.0, 0.0))  # never counted

    result = await experiment_results(service, tenant_id, "latency")
    assert result["units"] == {"control": 150, "fast": 150}
    assert result["requests"] == expected_requests
    latency = result["metrics"][0]
    assert latency["name"] == "latency_ms" and latency["better"] == "lower"
    # Per user: M = the user's latencies summed, D = the user's requests (a ratio, delta method).
    arms = []
    for variant in ("control", "fast"):
        m, d = (np.array(x) for x in latencies[variant])
        mean = m.sum() / d.sum()
        cov = np.cov(m, d)
        variance = (
            cov[0, 0] / d.mean() ** 2
            + cov[1, 1] * m.mean() ** 2 / d.mean() ** 4
            - 2 * cov[0, 1] * m.mean() / d.mean() ** 3
        )
        arms.append(ArmStats(n=len(m), mean=float(mean), variance=float(variance)))
        reported = next(v for v in latency["variants"] if v["name"] == variant)
        assert reported["mean"] == pytest.approx(mean)
    reference = welch_test(arms[0], arms[1], relative=True)
    comparison = latency["comparisons"][0]
    assert comparison["variant"] == "fast" and comparison["relative"] is True
    assert comparison["expected"] == pytest.approx(reference.expected)
    assert comparison["ci"] == pytest.approx(list(reference.ci))
    assert comparison["p_value"] == pytest.approx(reference.p_value)
    # Holm over every metric's comparisons (4 metrics x 1 treatment): the smallest p times 4.
    p_values = sorted(c["p_value"] for m in result["metrics"] for c in m["comparisons"] if "p_value" in c)
    assert min(c["p_value_adjusted"] for m in result["metrics"] for c in m["comparisons"] if "p_value" in c) == (
        pytest.approx(min(1.0, p_values[0] * len(p_values)))
    )
    assert result["srm"]["mismatch"] is False and result["srm"]["p_value"] == pytest.approx(1.0)
    # 20 ms faster on ~300 ms with 150 users each: significant, so ship it.
    assert result["decision"] == {"action": "ship", "variant": "fast", "reason": result["decision"]["reason"]}
    assert "warning" in result  # frequentist: the peeking warning
    feedback = next(m for m in result["metrics"] if m["name"] == "feedback")
    assert 0 < feedback["variants"][0]["units"] < 150  # only users who gave feedback
    report = text_report(result)
    assert "Decision: ship fast" in report and "latency_ms (mean, lower is better)" in report
    assert "Warning: fixed-horizon" in report


async def test_decision_waits_for_data_and_flags_a_ratio_mismatch(database: Database) -> None:
    tenant_id = await make_tenant(database, "acme")
    service = ExperimentService(database)
    experiment = await service.create(tenant_id, {**DEFINITION, "method": "sequential"})
    rng = random.Random(3)
    await _seed(
        database, tenant_id, experiment.id, _rows(rng, "control", 20, 300.0, 0.0) + _rows(rng, "fast", 20, 300.0, 0.0)
    )
    early = await experiment_results(service, tenant_id, experiment.id)
    assert early["decision"]["action"] == "keep running" and "below 100 units" in early["decision"]["reason"]
    assert "warning" not in early  # sequential: no peeking warning
    await _seed(database, tenant_id, experiment.id, _rows(rng, "control", 400, 300.0, 0.0))
    skewed = await experiment_results(service, tenant_id, experiment.id)
    assert skewed["srm"]["mismatch"] is True and skewed["decision"]["action"] == "stop"
    assert "MISMATCH" in text_report(skewed)
    empty = await service.create(tenant_id, {**DEFINITION, "name": "empty"})
    nothing = await experiment_results(service, tenant_id, empty.id)
    assert nothing["units"] == {"control": 0, "fast": 0}
    assert all("error" in c for m in nothing["metrics"] for c in m["comparisons"])


async def test_bandit_weights_are_reproducible_and_kept(database: Database) -> None:
    tenant_id = await make_tenant(database, "acme")
    service = ExperimentService(database)
    definition = {**DEFINITION, "name": "bandit", "unit": "request", "metrics": ["error_rate"], "bandit": True,
                  "method": "bayesian"}  # fmt: skip
    experiment = await service.create(tenant_id, definition)
    with pytest.raises(Conflict):  # only while running
        await update_bandit(service, tenant_id, experiment.id)
    await service.start(tenant_id, experiment.id)
    rng = random.Random(11)
    rows: list[dict[str, Any]] = []
    for variant, error_p in (("control", 0.3), ("fast", 0.1)):
        for i in range(200):
            rows.append({"experiment_variant": variant, "experiment_unit": f"{variant}-{i}", "latency_ms": 1.0,
                         "status": 500 if rng.random() < error_p else 200, "cost_usd": 0.0})  # fmt: skip
    await _seed(database, tenant_id, experiment.id, rows)
    first = await update_bandit(service, tenant_id, experiment.id)
    assert first["round"] == 1 and first["seed"] == bandit_seed(experiment.seed, 1)
    # The same data and seed, computed independently: the same weights.
    errors = {
        v: sum(1 for r in rows if r["experiment_variant"] == v and r["status"] >= 400) for v in ("control", "fast")
    }
    reference = thompson_beta([200 - errors["control"], 200 - errors["fast"]], [200, 200], seed=first["seed"])
    assert first["weights"] == pytest.approx(list(reference.weights))
    assert first["weights"][1] > 0.5 and min(first["weights"]) >= 0.01  # the better arm gains, the floor holds
    # The periodic job: experiments changed within min_age_s are left alone, the others updated.
    assert await update_all_bandits(service, min_age_s=3600) == 0
    assert await update_all_bandits(service) == 1
    second = (await weights_history(service, tenant_id, experiment.id))[-1]
    assert second["round"] == 2 and second["seed"] != first["seed"]
    history = await weights_history(service, tenant_id, experiment.id)
    assert [h["round"] for h in history] == [1, 2]
    assert history[0]["data"]["fast"]["denominator"] == 200
    stored = await service.get(tenant_id, experiment.id)
    assert list(stored.weights) == pytest.approx(second["weights"])
    # The running map follows the new weights at once in this process.
    running = await service.running_for(tenant_id)
    assert list(running["model:m"].weights) == pytest.approx(second["weights"])
    result = await experiment_results(service, tenant_id, experiment.id)
    assert result["srm"] is None  # a bandit's split moves: no fixed split to check


async def test_the_running_map_is_cached_and_dropped_on_change(database: Database) -> None:
    tenant_id = await make_tenant(database, "acme")
    now = [0.0]
    mine, other_process = (
        ExperimentService(database, clock=lambda: now[0]),
        ExperimentService(database, clock=lambda: now[0]),
    )
    assert await other_process.running_for(tenant_id) == {}
    experiment = await mine.create(tenant_id, DEFINITION)
    await mine.start(tenant_id, experiment.id)
    assert "model:m" in await mine.running_for(tenant_id)  # this process: at once
    assert await other_process.running_for(tenant_id) == {}  # another: after its cache TTL
    now[0] += 5.1
    arm = await other_process.assign(tenant_id, [mine_target()], lambda unit: "user-1")
    assert isinstance(arm, Arm) and arm.experiment_id == experiment.id
    assert arm.variant in (Variant("control"), Variant("fast", model="m-fast"))


def mine_target() -> Any:
    from bastion.experiments.model import Target

    return Target(model="m")


async def test_human_review_scores_are_a_metric_per_variant(database: Database) -> None:
    from bastion.review.models import Review, ReviewAssignment, ReviewBatch, ReviewItem

    tenant_id = await make_tenant(database, "acme")
    service = ExperimentService(database)
    definition = {**DEFINITION, "name": "reviewed", "metrics": ["review_score", "error_rate"]}
    experiment = await service.create(tenant_id, definition)
    # Per interaction: control's reviews average 3 and 4 over the six dimensions, fast's 5; one
    # control interaction has two reviews (4 and 2: its score is 3); unreviewed ones are not counted.
    plan = {"control": [[3], [4], [4, 2], None], "fast": [[5], [5], None]}
    async with database.transaction() as session:
        batch = ReviewBatch(id=new_id(), tenant_id=tenant_id, name="b", purpose="sft", kind="single",
                            reviewers_per_item=2, lease_s=60, filter={}, created_by="t")  # fmt: skip
        session.add(batch)
        await session.flush()  # no ORM relationships: each parent row is written before its children
        for variant, interactions in plan.items():
            for n, reviews in enumerate(interactions):
                interaction = Interaction(
                    id=new_id(), tenant_id=tenant_id, endpoint="chat", dialect="openai", model="m", stream=False,
                    status=200, experiment_id=experiment.id, experiment_variant=variant,
                    experiment_unit=f"{variant}-{n}",
                )  # fmt: skip
                session.add(interaction)
                if reviews is None:
                    continue
                item = ReviewItem(id=new_id(), tenant_id=tenant_id, batch_id=batch.id, purpose="sft",
                                  position=n, interaction_id=interaction.id)  # fmt: skip
                session.add(item)
                await session.flush()
                for slot, score in enumerate(reviews):
                    assignment = ReviewAssignment(id=new_id(), tenant_id=tenant_id, batch_id=batch.id,
                                                  item_id=item.id, slot=slot, reviewer=f"r{slot}",
                                                  state="submitted")  # fmt: skip
                    session.add(assignment)
                    await session.flush()
                    dimensions = {name: score for name in ("relevance", "accuracy", "helpfulness", "safety",
                                                           "coherence", "completeness")}  # fmt: skip
                    session.add(Review(id=new_id(), tenant_id=tenant_id, batch_id=batch.id, item_id=item.id,
                                       assignment_id=assignment.id, reviewer=f"r{slot}", **dimensions))  # fmt: skip
    result = await experiment_results(service, tenant_id, "reviewed")
    review = result["metrics"][0]
    assert review["name"] == "review_score" and review["better"] == "higher"
    by_variant = {v["name"]: v for v in review["variants"]}
    assert by_variant["control"]["units"] == 3 and by_variant["control"]["mean"] == pytest.approx(10 / 3)
    assert by_variant["fast"]["units"] == 2 and by_variant["fast"]["mean"] == pytest.approx(5.0)
