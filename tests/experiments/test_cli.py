"""``bastion experiments create|list|show|start|stop|results|report`` through typer's CliRunner on
SQLite and PostgreSQL: the same operations as the admin API, on the configured database."""

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
from bastion.store.db import Database
from tests.vault.support import make_tenant

DEFINITION = {
    "name": "cli-test",
    "target": {"model": "any-alias"},
    "variants": [{"name": "control"}, {"name": "warm", "params": {"temperature": 1.0}}],
    "metrics": ["error_rate"],
}


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "data_dir": str(tmp_path / "data"),
                                      "local": {"enabled": False}}))  # fmt: skip
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, ["experiments", *args, "--config", str(config)])
        assert "Traceback" not in result.output, result.output
        assert (result.exit_code == 0) == ok, (args, result.output)
        return result

    return invoke


async def test_define_run_and_report(database: Database, cli: Any, tmp_path: Path) -> None:
    await make_tenant(database, "acme")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(DEFINITION))
    run = asyncio.to_thread
    created = json.loads((await run(cli, "create", str(spec), "--tenant", "acme")).output)
    assert created["status"] == "draft" and created["seed"] == created["id"]
    started = json.loads((await run(cli, "start", created["id"])).output)
    assert started["status"] == "running"
    shown = json.loads((await run(cli, "show", "cli-test", "--tenant", "acme")).output)
    assert shown["id"] == created["id"] and shown["variants"][1]["params"] == {"temperature": 1.0}
    listed = (await run(cli, "list", "--status", "running")).output
    assert f"{created['id']}  cli-test  running  model:any-alias  [control,warm]" in listed
    results = json.loads((await run(cli, "results", created["id"])).output)
    assert results["units"] == {"control": 0, "warm": 0} and results["decision"]["action"] == "keep running"
    report = (await run(cli, "report", created["id"])).output
    assert report.startswith("Experiment cli-test (running, unit: user, method: bayesian)")
    assert json.loads((await run(cli, "stop", created["id"])).output)["status"] == "stopped"
    # Clear one-line errors: a second start, a duplicate name, an unknown tenant, a bad file.
    assert "only a draft can start" in (await run(cli, "start", created["id"], ok=False)).output
    assert "exists already" in (await run(cli, "create", str(spec), "--tenant", "acme", ok=False)).output
    assert "No tenant named 'nobody'" in (await run(cli, "create", str(spec), "--tenant", "nobody", ok=False)).output
    spec.write_text(json.dumps({**DEFINITION, "name": "other", "unit": "team"}))
    assert "unit must be one of" in (await run(cli, "create", str(spec), "--tenant", "acme", ok=False)).output
    assert "No experiment with id" in (await run(cli, "show", "cli-test", ok=False)).output
