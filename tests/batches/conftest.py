"""Fixtures of the batch suites: per-test databases (SQLite and PostgreSQL) and the in-process
gateway of ``support.py``."""

from __future__ import annotations

from tests.batches.support import batch_env  # noqa: F401  (fixture)
from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
