"""Insights tests: storage tests run on SQLite and on this machine's PostgreSQL (``database`` fixture)."""

from __future__ import annotations

from tests.support.db import *  # noqa: F403
