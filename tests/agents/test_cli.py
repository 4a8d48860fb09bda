"""``bastion agents`` (typer's CliRunner, SQLite and PostgreSQL): templates, run (as a user of a
tenant, waiting for the end), show, trace (verified), cancel; clear errors."""

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
from bastion.gateway.agent_runs import GatewayToolbox
from bastion.store.db import Database
from tests.agents.armfakes import FakeModel, FakeSandbox, RefusedFake, make_spec
from tests.sessions.support import seed_keys
from tests.support.db import *  # noqa: F403  (database, database_url)


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "bastion.yaml"
    data = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "local": {"enabled": False},
            "ledger": {"enabled": False}, "jobs": {"poll_interval_s": 0.05}}  # fmt: skip
    config.write_text(yaml.safe_dump(data))
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    sandbox = FakeSandbox()
    original = GatewayToolbox.__init__

    def with_model(self: GatewayToolbox, *args: Any) -> None:
        original(self, *args)
        self.model_override = FakeModel([{"files": {"sol.py": "x = 1"}}])
        self.sandbox = (sandbox, make_spec, (RefusedFake,))

    monkeypatch.setattr(GatewayToolbox, "__init__", with_model)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, ["agents", *args, "--config", str(config)])
        assert "Traceback" not in result.output, result.output
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return invoke


async def test_templates_run_show_trace_and_cancel(database: Database, cli: Any) -> None:
    await seed_keys(database)
    run = asyncio.to_thread  # the CLI runs its own event loop
    listed = (await run(cli, "templates")).output
    assert "code-until-tests-pass  guard-task:guardian -> code:coder" in listed

    started = await run(cli, "run", "code-until-tests-pass", "--tenant", "acme", "--user", "ann@acme.test",
                        "--input", '{"task": "write x"}')  # fmt: skip
    result = json.loads(started.output.strip().splitlines()[-1])
    assert result["status"] == "succeeded" and result["output"]["passed"] is True, result

    shown = json.loads((await run(cli, "show", result["id"])).output.strip().splitlines()[-1])
    assert shown["id"] == result["id"] and shown["trace_hash"] == result["trace_hash"]
    trace = json.loads((await run(cli, "trace", result["id"])).output.strip().splitlines()[-1])
    assert trace["verified"] is True and trace["events"][-1]["kind"] == "run_ended"

    assert "already ended" in (await run(cli, "cancel", result["id"], code=1)).output
    assert "No agent run" in (await run(cli, "show", "run_missing", code=1)).output
    refused = await run(cli, "run", "code-until-tests-pass", "--tenant", "acme", "--user", "nobody@acme.test", code=1)
    assert "No user 'nobody@acme.test'" in refused.output
    bad = await run(cli, "run", "code-until-tests-pass", "--tenant", "acme", "--user", "ann@acme.test",
                    "--input", "{}", code=1)  # fmt: skip
    assert "input does not match" in bad.output
