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

GARAK = Path(__file__).parent / "data" / "garak.report.jsonl"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "bastion.yaml"
    data = {"data_dir": str(tmp_path / "data"), "local": {"enabled": False}, "auth": {"default_tenant": "acme"}}
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
