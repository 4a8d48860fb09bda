"""Database fixtures: every storage test runs on SQLite and on the PostgreSQL of this machine,
each test in a database of its own.

PostgreSQL databases are cloned from a template migrated once per test session, which is much
faster than running the migrations for every test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("BASTION_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_PG_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0]


def pg_url(database: str, driver: str = "postgresql") -> str:
    return f"{_PG_BASE.replace('postgresql', driver, 1)}/{database}"


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, created once per session (name per worker process)."""
    name = f"bastion_tmpl_{os.getpid()}"

    async def create() -> None:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(f'CREATE DATABASE "{name}"')
        db = Database.from_settings(Settings(), pg_url(name, "postgresql+asyncpg"))
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(create())
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test; its plain ``postgresql://`` URL."""
    name = f"bastion_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bastion.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL (migrated, isolated)."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_database_url")
        return url
    pg: str = request.getfixturevalue("pg_database_url")
    return pg


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    settings = Settings(database_url=database_url)
    db = Database.from_settings(settings)
    await upgrade(db.engine)  # no-op on the migrated PostgreSQL clone; creates SQLite's schema
    try:
        yield db
    finally:
        await db.dispose()
