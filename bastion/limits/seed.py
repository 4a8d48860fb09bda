"""Spend that survives restarts: a budget window's counter, when missing, starts from the ledger.

The ledger is written asynchronously (a journal, then batches into the database), so a counter is
read from it once per window per process (memory backend) or per Redis key (Redis backend) and
kept up to date by settlements afterwards; reading it again would miss the requests still on their
way to the database. Concurrent requests that find the same counter missing share one query.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select

from bastion.spend.metrics import SEED_FAILURES
from bastion.store.models import Interaction

if TYPE_CHECKING:
    from bastion.limits.policy import Scope
    from bastion.store.db import Database

log = structlog.get_logger("bastion.spend")


class LedgerSeeder:
    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._inflight: dict[tuple[str, str, str, datetime], asyncio.Future[float]] = {}

    async def spent_usd(self, scope: Scope, since: datetime) -> float:
        """SUM(cost_usd) of the scope's interactions since ``since`` (0 if the ledger cannot be read)."""
        flight_key = (scope.kind, scope.tenant_id, scope.entity, since)
        pending = self._inflight.get(flight_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._inflight[flight_key] = future
        try:
            value = await self._query(scope, since)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody else awaited does not warn
            raise
        finally:
            del self._inflight[flight_key]

    async def _query(self, scope: Scope, since: datetime) -> float:
        if self.db is None:
            return 0.0
        statement = select(func.coalesce(func.sum(Interaction.cost_usd), 0.0)).where(
            Interaction.tenant_id == scope.tenant_id, Interaction.created_at >= since
        )
        if scope.kind == "key":
            statement = statement.where(Interaction.key_id == scope.entity)
        elif scope.kind == "user":
            statement = statement.where(Interaction.user_id == scope.entity)
        try:
            async with self.db.session() as session:
                return float(await session.scalar(statement) or 0.0)
        except Exception:
            # A budget must not take the gateway down with the database: start the window at 0.
            SEED_FAILURES.inc()
            log.exception("budget_seed_failed", scope=scope.kind, entity=scope.entity, since=since.isoformat())
            return 0.0
