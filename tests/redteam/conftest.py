"""The red-team suite's database fixtures (SQLite, and PostgreSQL under the ``postgres`` marker)."""

from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
