"""Fixtures of the Files API suite: per-test databases and the in-process gateway of ``support.py``."""

from __future__ import annotations

from tests.files.support import files_env  # noqa: F401  (fixture)
from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
