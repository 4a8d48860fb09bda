"""Fixtures of the agent sessions suite: per-test databases (SQLite and PostgreSQL) and the
in-process gateway of ``support.py``."""

from __future__ import annotations

from tests.sessions.support import sessions_env, settings_overrides  # noqa: F401
from tests.support.cluster import gateway_cluster  # noqa: F401  (fixture)
from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
