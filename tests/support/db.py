"""Database fixtures: every storage test runs on SQLite and on the PostgreSQL of this machine,
each test in a database of its own.

Both start from a template migrated once per test session (PostgreSQL clones it, SQLite copies
the file), which is much faster than running the migrations for every test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
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
    """The URL of a SQLite file of this test's own, not created yet (``database`` migrates it)."""
    return f"sqlite:///{tmp_path / 'bastion.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, made once per session."""
    path = tmp_path_factory.mktemp("sqlite-template") / "bastion.db"

    async def create() -> None:
        db = Database.from_settings(Settings(database_url=f"sqlite:///{path}"))
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(create())
    # Closing the last connection checkpoints the write-ahead log: the file alone is the database.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL (migrated, isolated)."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_database_url")
        return url
    pg: str = request.getfixturevalue("pg_database_url")
    return pg


@pytest.fixture
async def database(database_url: str, sqlite_template: Path) -> AsyncIterator[Database]:
    settings = Settings(database_url=database_url)
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.exists():  # a copy of the migrated template, unless the test made the file itself
            shutil.copyfile(sqlite_template, path)
    db = Database.from_settings(settings)
    await upgrade(db.engine)  # a no-op on the migrated copies: it checks they are at the head revision
    try:
        yield db
    finally:
        await db.dispose()
