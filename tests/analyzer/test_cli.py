"""``bastion prompts analyze``: a file or a vault prompt, as text or JSON; excerpts of a vault
prompt only with --excerpts (audited)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from tests.vault.test_cli import _json

SYSTEM = "You are KESTREL-9, a bot. Try to answer in order to help. Be concise. Explain each step in detail."


def _run(cli: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = cli.invoke(app, ["prompts", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_file_is_analysed_as_text_and_as_json(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "prompt.txt").write_text(SYSTEM)
    (tmp_path / "template.j2").write_text("Hi {{ name }} {{ extra }}")
    text = _run(cli, "analyze", "prompt.txt", "--template-file", "template.j2", "-V", "name")
    assert "clarity.conflicting-length: Conflicting length instructions" in text
    assert "template.undeclared-variable" in text and "> in order to" in text
    document = _json(_run(cli, "analyze", "-", "--json", stdin=SYSTEM))
    assert document["object"] == "prompt.analysis" and document["excerpts"] is True
    assert "efficiency.wordy-phrase" in {f["pattern_id"] for f in document["findings"]}


def test_a_vault_prompt_is_analysed_without_text_unless_asked(cli: CliRunner, tmp_path: Path) -> None:
    _run(cli, "create", "bot", "--tenant", "acme", "--system-file", "-", stdin=SYSTEM)
    plain = _json(_run(cli, "analyze", "--prompt", "bot", "--tenant", "acme", "--json"))
    assert plain["prompt_id"] == "bot" and plain["version"] == 1 and plain["excerpts"] is False
    assert "KESTREL" not in json.dumps(plain) and "in order to" not in json.dumps(plain)
    shown = _run(cli, "analyze", "--prompt", "bot", "--tenant", "acme", "--version", "1", "--excerpts")
    assert "bot v1:" in shown and "> in order to" in shown


@pytest.mark.parametrize(
    "args",
    [
        ("analyze",),
        ("analyze", "prompt.txt", "--prompt", "bot"),
        ("analyze", "--prompt", "bot"),
        ("analyze", "no-such-file.txt"),
    ],
)
def test_bad_arguments_fail_with_a_message(cli: CliRunner, tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "prompt.txt").write_text(SYSTEM)
    result = cli.invoke(app, ["prompts", *args])
    assert result.exit_code in (1, 2)
    assert result.exception is None or isinstance(result.exception, SystemExit)  # a message, not a crash
