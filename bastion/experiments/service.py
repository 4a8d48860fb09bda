"""The experiment service: define, start, stop, list; and assignment on the request path.

Assignment reads an in-memory map of each tenant's running experiments by target, loaded from the
database once per ``cache_ttl_s`` (5 s) per tenant and dropped at once when this process changes an
experiment; another process sees a change within the TTL. A request whose tenant has no running
experiment for its target costs one dictionary lookup. The arm is GrowthBook's: hash v2 of
``seed + unit id`` onto the bucket ranges of the weights and the coverage
(``bastion.stats.assignment``), so it is the same in every process and on every machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.errors import Conflict, NotFound
from bastion.experiments.model import (
    ASSIGNMENT_FIELDS,
    Arm,
    Experiment,
    Target,
    Unit,
    Variant,
    check_models,
    parse_definition,
)
from bastion.experiments.models import ExperimentRow
from bastion.experiments.store import apply_definition, find_row, list_rows, new_row, running_rows, to_experiment
from bastion.stats.assignment import assign
from bastion.store.db import Database
from bastion.store.models import new_id, utcnow

DEFAULT_CACHE_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class _Running:
    expires: float
    by_target: dict[str, Experiment]


def variant_for(experiment: Experiment, unit_id: str | None) -> Variant | None:
    """The unit's variant, or None: no unit id, or outside the coverage (the control path)."""
    if not unit_id:
        return None
    index = assign(
        experiment.seed, unit_id, len(experiment.variants), weights=experiment.weights, coverage=experiment.coverage
    )
    return experiment.variants[index] if index >= 0 else None


class ExperimentService:
    def __init__(
        self, db: Database, *, cache_ttl_s: float = DEFAULT_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._running: dict[str, _Running] = {}
        self._loading: dict[str, asyncio.Future[_Running]] = {}

    # -- the request path ------------------------------------------------------------------------

    async def running_for(self, tenant_id: str) -> dict[str, Experiment]:
        """The tenant's running experiments by target key (cached)."""
        entry = self._running.get(tenant_id)
        if entry is not None and entry.expires > self._clock():
            return entry.by_target
        return (await self._load(tenant_id)).by_target

    async def _load(self, tenant_id: str) -> _Running:
        pending = self._loading.get(tenant_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Running] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            async with self.db.session() as session:
                rows = await running_rows(session, tenant_id)
            entry = _Running(self._clock() + self.cache_ttl_s, {e.target.key(): e for e in map(to_experiment, rows)})
            self._running[tenant_id] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else is warned
            raise
        finally:
            del self._loading[tenant_id]

    async def assign(
        self, tenant_id: str, targets: Iterable[Target], unit_of: Callable[[Unit], str | None]
    ) -> Arm | None:
        """The arm of a request of ``tenant_id`` that matches ``targets`` (most specific first), or
        None: no running experiment for them, no unit id, or outside the coverage."""
        running = await self.running_for(tenant_id)
        if not running:
            return None
        for target in targets:
            experiment = running.get(target.key())
            if experiment is None:
                continue
            unit_id = unit_of(experiment.unit)
            variant = variant_for(experiment, unit_id)
            if variant is None or unit_id is None:
                return None
            return Arm(experiment.id, experiment.name, variant, unit_id, experiment.target)
        return None

    def invalidate(self, tenant_id: str) -> None:
        self._running.pop(tenant_id, None)

    # -- administration --------------------------------------------------------------------------

    async def create(
        self, tenant_id: str, body: Mapping[str, Any], is_chat_model: Callable[[str], bool] | None = None
    ) -> Experiment:
        """A draft from a JSON body; ``is_chat_model`` (the gateway's aliases) checks the models named."""
        definition = parse_definition(body)
        if is_chat_model is not None:
            check_models(definition, is_chat_model)
        try:
            async with self.db.transaction() as session:
                row = new_row(tenant_id, definition, new_id())
                session.add(row)
        except IntegrityError:
            raise Conflict(f"An experiment named {definition.name!r} exists already.", param="name") from None
        return to_experiment(row)

    async def get(self, tenant_id: str, ref: str) -> Experiment:
        async with self.db.session() as session:
            row = await find_row(session, tenant_id, ref)
        if row is None:
            raise NotFound(f"No experiment {ref[:64]!r}.")
        return to_experiment(row)

    async def list(self, tenant_id: str | None, status: str | None = None) -> list[Experiment]:
        async with self.db.session() as session:
            return [to_experiment(row) for row in await list_rows(session, tenant_id, status)]

    async def update(
        self, tenant_id: str, ref: str, body: Mapping[str, Any], is_chat_model: Callable[[str], bool] | None = None
    ) -> Experiment:
        try:
            async with self.db.transaction() as session:
                row = await self._row(session, tenant_id, ref)
                current = to_experiment(row)
                if current.status != "draft" and ASSIGNMENT_FIELDS & set(body):
                    fields = ", ".join(sorted(ASSIGNMENT_FIELDS & set(body)))
                    raise Conflict(
                        f"The experiment has started: {fields} can no longer change (it would move units "
                        "between variants). Stop it and create a new one."
                    )
                definition = parse_definition(body, current)
                if is_chat_model is not None:
                    check_models(definition, is_chat_model)
                apply_definition(row, definition)
                updated = to_experiment(row)
        except IntegrityError:
            raise Conflict("An experiment with that name exists already.", param="name") from None
        self.invalidate(tenant_id)
        return updated

    async def delete(self, tenant_id: str, ref: str) -> None:
        async with self.db.transaction() as session:
            row = await self._row(session, tenant_id, ref)
            if row.status == "running":
                raise Conflict("Stop the experiment before deleting it.")
            await session.delete(row)
        self.invalidate(tenant_id)

    async def start(self, tenant_id: str, ref: str) -> Experiment:
        async with self.db.transaction() as session:
            row = await self._row(session, tenant_id, ref)
            if row.status != "draft":
                raise Conflict(f"The experiment is {row.status}: only a draft can start.")
            target = to_experiment(row).target.key()
            for other in await running_rows(session, tenant_id):
                if to_experiment(other).target.key() == target:
                    raise Conflict(f"The experiment {other.name!r} already runs on the same target; stop it first.")
            row.status = "running"
            row.started_at = row.updated_at = utcnow()
            started = to_experiment(row)
        self.invalidate(tenant_id)
        return started

    async def stop(self, tenant_id: str, ref: str) -> Experiment:
        async with self.db.transaction() as session:
            row = await self._row(session, tenant_id, ref)
            if row.status != "running":
                raise Conflict(f"The experiment is {row.status}: only a running one can stop.")
            row.status = "stopped"
            row.stopped_at = row.updated_at = utcnow()
            stopped = to_experiment(row)
        self.invalidate(tenant_id)
        return stopped

    async def _row(self, session: AsyncSession, tenant_id: str, ref: str) -> ExperimentRow:
        row = await find_row(session, tenant_id, ref, lock=True)
        if row is None:
            raise NotFound(f"No experiment {ref[:64]!r}.")
        return row
