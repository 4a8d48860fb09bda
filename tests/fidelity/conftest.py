from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.db import sqlite_template  # noqa: F401


@pytest.fixture
def db_path(tmp_path: Path, sqlite_template: Path) -> Path:  # noqa: F811
    """A migrated SQLite file of this test's own (the gateway's identity store needs the tables)."""
    path = tmp_path / "bastion.db"
    shutil.copyfile(sqlite_template, path)
    return path
