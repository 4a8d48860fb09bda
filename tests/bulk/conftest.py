"""Fixtures of the bulk suite: per-test databases (SQLite and PostgreSQL) and the in-process
gateway of ``support.py``."""

from __future__ import annotations

from tests.bulk.support import bulk_env, bulk_overrides  # noqa: F401  (fixtures)
from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
