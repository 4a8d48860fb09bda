from __future__ import annotations

from tests.support.db import sqlite_database_url, sqlite_template  # noqa: F401
