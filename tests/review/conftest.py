"""Fixtures of the review suite: per-test databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
