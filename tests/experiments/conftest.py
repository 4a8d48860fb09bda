"""Experiment tests run on SQLite and on this machine's PostgreSQL (``database`` fixture)."""

from __future__ import annotations

from tests.experiments.support import experiment_gateway  # noqa: F401
from tests.support.db import *  # noqa: F403
