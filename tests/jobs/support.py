"""What the job tests share: a clock to move, fast settings, a service factory, tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.config.work_settings import JobsSettings
from bastion.jobs.registry import JobRegistry
from bastion.jobs.service import JobService
from bastion.store.db import Database
from bastion.store.models import Tenant


class Clock:
    """A UTC clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def fast_settings(**overrides: Any) -> JobsSettings:
    """Intervals short enough for tests that wait on workers (by polling, never by sleeping)."""
    values: dict[str, Any] = {
        "lease_ttl_s": 5.0,
        "heartbeat_interval_s": 0.5,
        "cancel_poll_s": 0.1,
        "sweep_interval_s": 0.2,
        "poll_interval_s": 0.1,
        "metrics_interval_s": 0.2,
        **overrides,
    }
    return JobsSettings.model_validate(values)


def service(
    db: Database,
    registry: JobRegistry,
    *,
    workers: int = 2,
    redis_url: str | None = None,
    **settings: Any,
) -> JobService:
    return JobService(db, fast_settings(**settings), redis_url, registry, workers=workers)


async def make_tenants(db: Database, *names: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    async with db.transaction() as session:
        for name in names:
            tenant = Tenant(name=name, settings={})
            session.add(tenant)
            await session.flush()
            ids[name] = tenant.id
    return ids
