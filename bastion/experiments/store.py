"""Rows of the ``experiments`` table to ``Experiment`` values and back, and the queries the
service shares."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.experiments.model import Definition, Experiment, Method, Status, Target, Unit, Variant
from bastion.experiments.models import ExperimentRow
from bastion.store.models import utcnow


def to_experiment(row: ExperimentRow) -> Experiment:
    target = row.target or {}
    variants = tuple(
        Variant(
            name=v["name"],
            prompt_version=v.get("prompt_version"),
            prompt_label=v.get("prompt_label"),
            model=v.get("model"),
            params=dict(v.get("params") or {}),
        )
        for v in row.variants
    )
    return Experiment(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        hypothesis=row.hypothesis,
        target=Target(model=target.get("model"), prompt_id=target.get("prompt_id")),
        variants=variants,
        weights=tuple(float(w) for w in row.weights),
        coverage=row.coverage,
        unit=cast(Unit, row.unit),
        metrics=tuple(row.metrics),
        seed=row.seed,
        status=cast(Status, row.status),
        method=cast(Method, row.method),
        bandit=row.bandit,
        correction=row.correction,
        created_at=row.created_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
    )


def apply_definition(row: ExperimentRow, definition: Definition) -> None:
    row.name = definition.name
    row.hypothesis = definition.hypothesis
    row.target = definition.target.to_json()
    row.variants = [v.to_json() for v in definition.variants]
    row.weights = list(definition.weights)
    row.coverage = definition.coverage
    row.unit = definition.unit
    row.metrics = list(definition.metrics)
    row.seed = definition.seed or row.id
    row.method = definition.method
    row.bandit = definition.bandit
    row.correction = definition.correction
    row.updated_at = utcnow()


def new_row(tenant_id: str, definition: Definition, experiment_id: str) -> ExperimentRow:
    row = ExperimentRow(id=experiment_id, tenant_id=tenant_id, status="draft", bandit_updates=0)
    row.created_at = utcnow()
    apply_definition(row, definition)
    return row


async def find_row(session: AsyncSession, tenant_id: str, ref: str, *, lock: bool = False) -> ExperimentRow | None:
    """The tenant's experiment by id or by name."""
    query = select(ExperimentRow).where(
        ExperimentRow.tenant_id == tenant_id, or_(ExperimentRow.id == ref, ExperimentRow.name == ref)
    )
    if lock:
        query = query.with_for_update()
    rows = list((await session.execute(query)).scalars())
    if not rows:
        return None
    by_id = [row for row in rows if row.id == ref]
    return by_id[0] if by_id else rows[0]


async def running_rows(session: AsyncSession, tenant_id: str) -> list[ExperimentRow]:
    query = select(ExperimentRow).where(ExperimentRow.tenant_id == tenant_id, ExperimentRow.status == "running")
    return list((await session.execute(query)).scalars())


async def list_rows(session: AsyncSession, tenant_id: str | None, status: str | None) -> list[ExperimentRow]:
    query = select(ExperimentRow).order_by(ExperimentRow.created_at.desc(), ExperimentRow.id)
    if tenant_id is not None:
        query = query.where(ExperimentRow.tenant_id == tenant_id)
    if status is not None:
        query = query.where(ExperimentRow.status == status)
    return list((await session.execute(query)).scalars())


def history_json(rows: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "round": row.round,
            "created_at": row.created_at.isoformat(),
            "weights": list(row.weights),
            "best_arm_probabilities": list(row.best_arm_probabilities),
            "data": row.data,
            "seed": row.seed,
        }
        for row in rows
    ]
