"""Reading an experiment's data: results from the ledger, and bandit weight updates.

A bandit update computes new traffic weights by Thompson sampling (top-two from three arms, a 1% floor per arm,
``bastion.stats.bandits``) on the experiment's primary metric: Beta posteriors for binomial
metrics (a success is a request that did not count against the metric when lower is better),
normal ones for the others. Update ``k`` draws from a generator seeded with
``fnv1a32(seed + ":bandit:" + k)``, so the same data give the same weights anywhere; every update
is kept (``experiment_weights``). New weights move the bucket ranges, so some units change arm:
bandits optimise traffic, they are not a fixed-split test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bastion.errors import Conflict, NotFound
from bastion.experiments.metrics import METRICS, VariantData, summarise, unit_totals
from bastion.experiments.model import Experiment
from bastion.experiments.models import ExperimentRow, ExperimentWeights
from bastion.experiments.report import results
from bastion.experiments.service import ExperimentService
from bastion.experiments.store import find_row, history_json, to_experiment
from bastion.stats.assignment import fnv1a32
from bastion.stats.bandits import BanditWeights, thompson_beta, thompson_gaussian
from bastion.stats.errors import StatsError
from bastion.stats.ratio import ratio_arm
from bastion.stats.summary import ArmStats
from bastion.store.models import utcnow
from bastion.store.periodic import PeriodicSweep

log = structlog.get_logger("bastion.experiments")


async def variant_data(service: ExperimentService, experiment: Experiment) -> list[VariantData]:
    async with service.db.session() as session:
        totals = await unit_totals(session, experiment.tenant_id, experiment.id)
    return summarise([v.name for v in experiment.variants], totals, experiment.metrics)


async def experiment_results(service: ExperimentService, tenant_id: str, ref: str) -> dict[str, Any]:
    experiment = await service.get(tenant_id, ref)
    return results(experiment, await variant_data(service, experiment))


def bandit_seed(seed: str, round_number: int) -> int:
    return fnv1a32(f"{seed}:bandit:{round_number}") & 0x7FFFFFFF


def bandit_weights(experiment: Experiment, data: list[VariantData], seed: int) -> BanditWeights:
    """Thompson-sampling weights on the primary metric (1% floor; top-two with three arms or more:
    with two, every draw ranks both arms in the top two and the split would stay even)."""
    metric = METRICS[experiment.metrics[0]]
    sums = [d.sums[metric.name] for d in data]
    top_two = len(sums) > 2
    if metric.kind == "binomial":
        trials = [round(s.denominator_sum) for s in sums]
        hits = [round(s.numerator_sum) for s in sums]
        successes = [t - h for t, h in zip(trials, hits, strict=True)] if metric.inverse else hits
        return thompson_beta(successes, trials, seed=seed, top_two=top_two)
    arms: list[ArmStats] = []
    for s in sums:
        try:
            arms.append(ratio_arm(s))
        except StatsError:
            arms.append(ArmStats(n=0, mean=0.0, variance=0.0))  # no data yet: equal weights
    return thompson_gaussian(arms, seed=seed, top_two=top_two, inverse=metric.inverse)


def _data_json(data: list[VariantData], metric: str) -> dict[str, Any]:
    return {
        d.name: {
            "units": d.sums[metric].n,
            "sum": d.sums[metric].numerator_sum,
            "denominator": d.sums[metric].denominator_sum,
        }
        for d in data
    }


async def update_bandit(service: ExperimentService, tenant_id: str, ref: str) -> dict[str, Any]:
    """One bandit update of a running bandit experiment: new weights, recorded in the history."""
    experiment = await service.get(tenant_id, ref)
    if not experiment.bandit:
        raise Conflict("The experiment is not a bandit (set bandit: true when defining it).")
    if experiment.status != "running":
        raise Conflict(f"The experiment is {experiment.status}: weights are updated while it runs.")
    data = await variant_data(service, experiment)
    try:
        async with service.db.transaction() as session:
            row = await find_row(session, tenant_id, experiment.id, lock=True)
            if row is None:
                raise NotFound(f"No experiment {ref[:64]!r}.")
            round_number = row.bandit_updates + 1
            seed = bandit_seed(row.seed, round_number)
            weights = bandit_weights(to_experiment(row), data, seed)
            row.weights = list(weights.weights)
            row.bandit_updates = round_number
            row.updated_at = utcnow()
            session.add(
                ExperimentWeights(
                    experiment_id=row.id,
                    round=round_number,
                    created_at=utcnow(),
                    weights=list(weights.weights),
                    best_arm_probabilities=list(weights.best_arm_probabilities),
                    data=_data_json(data, experiment.metrics[0]),
                    seed=seed,
                )
            )
    except IntegrityError:
        raise Conflict("Another process updated the weights at the same moment; try again.") from None
    service.invalidate(tenant_id)
    return {
        "round": round_number,
        "seed": seed,
        "weights": list(weights.weights),
        "best_arm_probabilities": list(weights.best_arm_probabilities),
    }


async def weights_history(service: ExperimentService, tenant_id: str, ref: str) -> list[dict[str, Any]]:
    experiment = await service.get(tenant_id, ref)
    async with service.db.session() as session:
        rows = (
            await session.execute(
                select(ExperimentWeights)
                .where(ExperimentWeights.experiment_id == experiment.id)
                .order_by(ExperimentWeights.round)
            )
        ).scalars()
        return history_json(list(rows))


async def update_all_bandits(service: ExperimentService, min_age_s: float = 0.0) -> int:
    """One update of every running bandit experiment not changed in the last ``min_age_s`` seconds
    (so several gateway processes update each about once per interval); how many were updated."""
    since = utcnow() - timedelta(seconds=min_age_s)
    async with service.db.session() as session:
        rows = (
            await session.execute(
                select(ExperimentRow.tenant_id, ExperimentRow.id).where(
                    ExperimentRow.status == "running",
                    ExperimentRow.bandit.is_(True),
                    ExperimentRow.updated_at <= since,
                )
            )
        ).all()
    updated = 0
    for tenant_id, experiment_id in rows:
        try:
            await update_bandit(service, tenant_id, experiment_id)
        except (Conflict, NotFound):  # stopped meanwhile, or another process did it
            continue
        except StatsError as exc:
            log.warning("bandit_update_failed", experiment_id=experiment_id, error=str(exc)[:200])
            continue
        updated += 1
    return updated


class BanditUpdates:
    """Updates every running bandit experiment's weights every ``interval_s`` (a gateway lifecycle)."""

    def __init__(self, service: ExperimentService, interval_s: float) -> None:
        self._sweep = PeriodicSweep(
            "bandit_updates",
            lambda: interval_s,
            lambda: update_all_bandits(service, min_age_s=interval_s / 2),
            "bastion.experiments",
            event="bandit_weights_updated",
        )

    async def start(self) -> None:
        self._sweep.start()

    async def stop(self) -> None:
        await self._sweep.stop()
