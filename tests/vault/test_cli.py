"""``bastion prompts ...`` and ``bastion vault ...`` end to end on the embedded default (SQLite and a
generated key file in the data directory)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.vault.keys import read_key_file
from tests.vault.support import SECRET_TEXT


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in [n for n in os.environ if n.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    # The commands configure process-wide logging; keep the test process's own configuration.
    monkeypatch.setattr("bastion.observability.logging.configure_logging", lambda settings: None)
    return CliRunner()


def _json(output: str) -> dict[str, Any]:
    """The JSON document a command printed (log lines of the test process may precede it)."""
    lines = output.splitlines()
    document: dict[str, Any] = json.loads("\n".join(lines[lines.index("{") :]))
    return document


def _ok(cli: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = cli.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_prompt_commands_and_rotation(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "template.j2").write_text("Customer {{ name }} asks.")
    created = _json(
        _ok(
            cli,
            "prompts",
            "create",
            "bot",
            "--tenant",
            "acme",
            "--system-file",
            "-",
            "--template-file",
            "template.j2",
            "--model",
            "gpt-x",
            "--param",
            "temperature=0.2",
            stdin=SECRET_TEXT,
        )
    )
    assert created["labels"] == {"production": 1} and SECRET_TEXT not in json.dumps(created)
    key_file = tmp_path / "data" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    version = _json(
        _ok(cli, "prompts", "version", "bot", "-t", "acme", "-s", "-", "-l", "staging", stdin="second text")
    )
    assert version["version"] == 2 and version["labels"] == ["staging"]
    _ok(cli, "prompts", "label", "bot", "production", "2", "-t", "acme")
    _ok(cli, "prompts", "clone", "bot", "bot-copy", "-t", "acme")
    assert "bot  v2  [production=2, staging=2]" in _ok(cli, "prompts", "list", "-t", "acme")
    shown = _json(_ok(cli, "prompts", "show", "bot", "-t", "acme"))
    assert [v["version"] for v in shown["versions"]] == [1, 2] and SECRET_TEXT not in json.dumps(shown)
    text = _json(_ok(cli, "prompts", "show", "bot-copy", "-t", "acme", "--plaintext", "--version", "1"))
    assert text["system_prompt"] == SECRET_TEXT and text["user_template"] == "Customer {{ name }} asks."

    old = read_key_file(key_file)[0].key_id
    assert f"{old}  4 version(s)  [active]" in _ok(cli, "vault", "status")
    rotated = _ok(cli, "vault", "rotate")
    new = read_key_file(key_file)[0].key_id
    assert new != old and f"dropped key ids: {old}" in rotated and old not in key_file.read_text()
    assert f"{new}  4 version(s)  [active]" in _ok(cli, "vault", "status")
    assert key_file.read_text().splitlines()[1] not in _ok(cli, "vault", "status")  # never key material
    text = _json(_ok(cli, "prompts", "show", "bot", "-t", "acme", "--plaintext"))
    assert text["system_prompt"] == "second text"
    archived = _json(_ok(cli, "prompts", "archive", "bot", "-t", "acme"))
    assert archived["archived"] is True

    with sqlite3.connect(tmp_path / "data" / "bastion.db") as connection:
        actions = [row[0] for row in connection.execute("SELECT action FROM audit_events ORDER BY created_at")]
    assert actions.count("prompt.read_plaintext") == 2 and "vault.rotate" in actions


def test_cli_errors_are_messages(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["prompts", "list", "--tenant", "nobody"])
    assert result.exit_code == 1 and "no tenant named 'nobody'" in result.output
    result = cli.invoke(app, ["prompts", "create", "bot", "-t", "acme", "-s", str(tmp_path / "missing.txt")])
    assert result.exit_code == 1 and "cannot read" in result.output
    result = cli.invoke(app, ["vault", "rotate", "--new-key-hex", "abc"])
    assert result.exit_code == 2 and "64 hexadecimal characters" in result.output
