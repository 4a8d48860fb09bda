"""Fixtures of the identity suite: the per-test SQLite and PostgreSQL databases (``database``,
``database_url``, ``pg_database_url``, ``sqlite_database_url``), the in-process admin app
(``env``) and a populated identity world for the admin API tests (``world``)."""

from __future__ import annotations

from tests.auth.admin_world import world  # noqa: F401
from tests.auth.support import env  # noqa: F401
from tests.support.db import *  # noqa: F403
