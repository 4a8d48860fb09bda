"""Fixtures of the analyzer suite: per-test databases, the vault's in-process gateway (keys for
tenants ``acme`` and ``globex`` by role, the session's fake upstream behind ``vault-model``) and
the vault suite's ``cli`` runner (a data directory of the test's own)."""

from __future__ import annotations

from tests.support.db import *  # noqa: F403  (database, database_url, pg_database_url, sqlite_database_url)
from tests.vault.gateway_support import vault_gateway  # noqa: F401
from tests.vault.test_cli import cli  # noqa: F401
