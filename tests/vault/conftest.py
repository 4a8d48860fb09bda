"""Fixtures of the prompt vault suite: per-test databases (SQLite and PostgreSQL), a vault service
with a key file of its own and a movable clock, and tenants made directly."""

from __future__ import annotations

from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
from tests.vault.gateway_support import vault_gateway  # noqa: F401
from tests.vault.support import *  # noqa: F403
