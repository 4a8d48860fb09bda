"""Fixtures of the guard stages suite: the in-process gateway of ``support.py`` over a per-test
SQLite database (the guard does not touch storage itself; the ledger's own suites cover both
backends)."""

from __future__ import annotations

import pytest

from tests.guard_stages.support import guard_env, guard_fake, guard_fake_upstream, guard_overrides  # noqa: F401
from tests.support.db import database, sqlite_database_url, sqlite_template  # noqa: F401


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:  # noqa: F811 - uses the imported fixture
    return sqlite_database_url
