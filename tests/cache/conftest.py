"""Fixtures of the response-cache suite (``support.py``) over a per-test SQLite database (the cache
does not touch the database; the ledger's own suites cover both backends)."""

from __future__ import annotations

import pytest

from tests.cache.support import cache_env, cache_overrides  # noqa: F401
from tests.guard_stages.support import guard_fake, guard_fake_upstream  # noqa: F401
from tests.support.db import database, sqlite_database_url, sqlite_template  # noqa: F401


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:  # noqa: F811 - uses the imported fixture
    return sqlite_database_url
