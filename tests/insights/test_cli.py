"""``bastion insights run|rebuild|prune`` through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.store.db import Database
from tests.insights.synthetic import dump, insert, records, rollup


async def test_run_rebuild_and_prune_from_the_command_line(
    database: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "bastion.yaml"
    data = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "local": {"enabled": False}}
    config.write_text(yaml.safe_dump(data))
    rows = records(120, seed=6, base=datetime.now(UTC) - timedelta(hours=3), span_s=7200)
    await insert(database, rows)
    runner = CliRunner()

    def invoke(command: str) -> dict[str, object]:
        # The CLI runs its own event loop: in a thread, beside this test's.
        result = runner.invoke(app, ["insights", command, "--config", str(config)])
        assert result.exit_code == 0, result.output
        parsed: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
        return parsed

    ran = await asyncio.to_thread(invoke, "run")
    assert ran["rows_read"] == len(rows) and ran["late_skipped"] == 0
    after_run = await dump(database)
    assert after_run
    rebuilt = await asyncio.to_thread(invoke, "rebuild")
    assert rebuilt["rows_read"] == len(rows)
    assert await dump(database) == after_run
    assert (await rollup(database).run()).rows_read <= len(rows)
    assert "pruned" in await asyncio.to_thread(invoke, "prune")
