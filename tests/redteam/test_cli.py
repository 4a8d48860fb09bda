"""``bastion redteam``: the library, a garak import, and showing a run and its report (typer's
CliRunner on a SQLite database made by the commands themselves)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli.main import app
from tests.redteam.support import leaky
from tests.support.fake_upstream import Behaviour, FakeUpstream

GARAK = Path(__file__).parent / "data" / "garak.report.jsonl"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeUpstream) -> Any:
    config = tmp_path / "bastion.yaml"
    fake.default("rt-cli-leaky", Behaviour.replying(leaky))
    deployment = {"provider": "openai", "model": "rt-cli-leaky", "api_base": fake.openai_base, "api_key": "k"}
    data = {
        "data_dir": str(tmp_path / "data"),
        "local": {"enabled": False},
        "auth": {"default_tenant": "acme"},
        "models": [{"name": "leaky", "deployments": [deployment]}],
        "jobs": {"poll_interval_s": 0.05, "cancel_poll_s": 0.05},
    }
    config.write_text(yaml.safe_dump(data))
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert "Traceback" not in result.output, result.output
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return invoke


def test_import_a_garak_report_then_show_it(cli: Any) -> None:
    cli("tenants", "create", "acme")
    imported = json.loads(cli("redteam", "import-garak", str(GARAK)).stdout)
    assert imported["source"] == "garak" and imported["summary"]["success_rate"] == 0.4
    shown = json.loads(cli("redteam", "show", imported["id"]).stdout)
    assert shown["id"] == imported["id"] and shown["status"] == "imported"
    report = json.loads(cli("redteam", "show", imported["id"], "--report").stdout)
    assert report["schema"] == "bastion.redteam.garak_import"
    missing = cli("redteam", "show", "nope", code=1)
    assert "No red-team run" in missing.output
    assert "No tenant named 'globex'" in cli("redteam", "show", imported["id"], "--tenant", "globex", code=1).output


def test_the_library_is_listed(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["redteam", "attacks", "--category", "encoding"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed and all(attack["category"] == "encoding" for attack in listed)


def test_a_run_from_the_terminal_writes_both_reports(cli: Any, tmp_path: Path) -> None:
    cli("keys", "create", "--tenant", "acme", "--role", "developer")
    (key,) = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    args = ["redteam", "run", "--model", "leaky", "--key-id", key["id"], "--no-guard"]
    args += ["--category", "system_prompt_extraction", "--max-attempts", "4", "--seed", "2"]
    args += ["--out", str(out), "--html", str(page)]
    run = _last_json(cli(*args).stdout)
    assert run["status"] == "succeeded" and run["summary"]["success_rate"] == 1.0
    report = json.loads(out.read_text())
    assert report["totals"]["attempts"] == 4 and report["run"]["id"] == run["id"]
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert json.loads(cli("redteam", "show", run["id"]).stdout)["status"] == "succeeded"
    assert "'nope' is not a chat model" in cli(*args[:3], "nope", *args[4:], code=1).output


def _last_json(output: str) -> Any:
    """The JSON the command printed last (the gateway it starts logs to the terminal before it)."""
    start = output.rfind("\n{")
    return json.loads(output[start + 1 :] if start >= 0 else output)


def test_a_run_in_model_mode_writes_both_reports_into_a_directory(cli: Any, tmp_path: Path) -> None:
    cli("keys", "create", "--tenant", "acme", "--role", "admin")
    (key,) = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    out = tmp_path / "reports"
    args = ["redteam", "run", "--model", "leaky", "--key-id", key["id"], "--mode", "model"]
    run = _last_json(cli(*args, "--categories", "system_prompt_extraction,pii_extraction", "--max-attempts", "4",
                         "--out", str(out)).stdout)  # fmt: skip
    assert run["status"] == "succeeded" and run["guard"] is False
    assert set(run["spec"]["categories"]) == {"system_prompt_extraction", "pii_extraction"}
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["id"] == run["id"] and (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "contradicts --guard" in cli(*args, "--guard", code=1).output
    assert "--mode must be" in cli(*args[:-1], "both", code=1).output
    assert "--key-id is required" in cli("redteam", "run", "--model", "leaky", code=1).output
