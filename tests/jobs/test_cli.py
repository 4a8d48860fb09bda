"""``bastion jobs list|show|cancel|retry`` through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.config.settings import Settings
from bastion.jobs.model import NewJob
from bastion.jobs.service import JobService
from bastion.store.db import Database
from tests.jobs.support import make_tenants


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    data = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "local": {"enabled": False}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cli(config: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert "Traceback" not in result.output, result.output
        assert (result.exit_code == 0) == ok, (args, result.output, result.exception)
        return result

    return invoke


async def _seed(database: Database, database_url: str) -> dict[str, str]:
    tenants = await make_tenants(database, "acme", "globex")
    service = JobService.from_settings(Settings(database_url=database_url), database, workers=0)
    made = {}
    for name, tenant in (("a1", "acme"), ("a2", "acme"), ("g1", "globex")):
        job = await service.submit(NewJob("cli.export", payload={"name": name}, tenant_id=tenants[tenant]))
        made[name] = job.id
    return made


async def test_list_show_cancel_and_retry(database: Database, database_url: str, cli: Any) -> None:
    made = await _seed(database, database_url)
    run = asyncio.to_thread  # the CLI runs its own event loop

    listed = await run(cli, "jobs", "list", "--json")
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert {row["id"] for row in rows} == set(made.values())
    assert all("payload" not in row for row in rows)
    acme = await run(cli, "jobs", "list", "--tenant", "acme")
    assert sorted(line.split()[0] for line in acme.output.splitlines()) == sorted([made["a1"], made["a2"]])
    assert "cli.export queued attempts=0/3" in acme.output

    shown = json.loads((await run(cli, "jobs", "show", made["g1"])).output)
    assert shown["payload"] == {"name": "g1"} and shown["state"] == "queued"

    cancelled = json.loads((await run(cli, "jobs", "cancel", made["a1"], "--json")).output)
    assert cancelled["state"] == "cancelled"
    assert made["a1"] in (await run(cli, "jobs", "list", "--state", "cancelled")).output
    retried = json.loads((await run(cli, "jobs", "retry", made["a1"], "--json")).output)
    assert retried["state"] == "queued" and retried["attempts"] == 0

    again = await run(cli, "jobs", "retry", made["a1"], ok=False)
    assert "only a failed or cancelled job can be retried" in again.output
    missing = await run(cli, "jobs", "show", "job_nope", ok=False)
    assert "No job 'job_nope'" in missing.output
    assert "--state must be one of" in (await run(cli, "jobs", "list", "--state", "sleeping", ok=False)).output
    assert "No tenant named 'initech'" in (await run(cli, "jobs", "list", "--tenant", "initech", ok=False)).output
