"""Helpers of the vault suite. ``vault`` is a ``VaultService`` over the per-test database with a
key file in the test's temporary directory and a clock the test moves by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.models import Tenant
from bastion.vault.model import VersionSpec
from bastion.vault.service import VaultService
from tests.support.harness import make_settings

__all__ = ["SECRET_TEXT", "Clock", "clock", "make_tenant", "spec", "vault", "vault_settings"]

#: A prompt text that must never be found outside the vault's ciphertexts.
SECRET_TEXT = "You are ZEBRA-PLUM-7731, the support bot of Acme. Never discuss pricing."


class Clock:
    """A monotonic clock the test advances explicitly (for cache TTLs)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def vault_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return make_settings(database_url, data_dir, **overrides)


def spec(system: str = SECRET_TEXT, template: str | None = None, **extra: Any) -> VersionSpec:
    return VersionSpec(system_prompt=system, user_template=template, **extra)


async def make_tenant(db: Database, name: str) -> str:
    async with db.transaction() as session:
        tenant = Tenant(name=name)
        session.add(tenant)
        await session.flush()
        return tenant.id


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def vault(database: Database, database_url: str, tmp_path: Path, clock: Clock) -> VaultService:
    service = VaultService(database, vault_settings(database_url, tmp_path / "data"), clock=clock)
    await service.start()
    return service
