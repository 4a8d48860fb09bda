"""Fixtures of the guard stages suite: the in-process gateway of ``support.py`` over a per-test
SQLite database (the guard does not touch storage itself; the ledger's own suites cover both
backends), and the PostgreSQL one where a test asks for it."""

from __future__ import annotations

import pytest

from tests.guard_stages.support import guard_env, guard_fake, guard_fake_upstream, guard_overrides  # noqa: F401
from tests.support.db import database, pg_database_url, pg_template, sqlite_database_url  # noqa: F401


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url
