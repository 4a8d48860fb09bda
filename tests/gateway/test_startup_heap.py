"""The served gateway keeps its start-up heap out of the garbage collector's scans while it runs."""

from __future__ import annotations

import gc
from pathlib import Path

from bastion.api.app import create_app
from tests.support.harness import make_settings


async def test_the_lifespan_freezes_the_start_up_heap_and_thaws_it_at_shut_down(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}", tmp_path, auto_migrate=True)
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        # The gateway's services (and everything imported to build them) are in the frozen generation.
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
