"""``bastion review ...`` and ``bastion datasets ...`` through typer's CliRunner, on the embedded
default (the SQLite file in the data directory)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.auth.principal import Role
from bastion.cli.main import app
from bastion.config.settings import Settings
from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.review.reference import bedrock_ok, cookbook_format_errors, jsonl
from tests.review.support import SCORES, add_interactions, interaction, review_all, service, tenants, who


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in [n for n in os.environ if n.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bastion.observability.logging.configure_logging", lambda settings: None)
    return CliRunner()


async def _seed(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(Settings(database_url=f"sqlite:///{data_dir / 'bastion.db'}"))
    try:
        await upgrade(db.engine)
        ids = await tenants(db, "acme")
        await add_interactions(db, [interaction(ids["acme"], i) for i in range(11)])
        reviews = service(db)
        batch = await reviews.prepare(who(ids["acme"], "admin", Role.ADMIN), {"reviewers_per_item": 2})
        decide = lambda index, item: {"scores": SCORES, "verdict": "approve"}  # noqa: E731
        await review_all(reviews, batch["id"], [who(ids["acme"], "ann"), who(ids["acme"], "bob")], decide)
        return str(batch["id"])
    finally:
        await db.dispose()


def _ok(cli: CliRunner, *args: str) -> Any:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("{", "["))
    return json.loads("\n".join(lines[start:]))


def test_review_and_dataset_commands(cli: CliRunner, tmp_path: Path) -> None:
    batch_id = asyncio.run(_seed(tmp_path / "data"))
    assert [b["id"] for b in _ok(cli, "review", "batches", "-t", "acme")] == [batch_id]
    assert _ok(cli, "review", "progress", batch_id, "-t", "acme")["counts"]["items_complete"] == 11
    agreement = _ok(cli, "review", "agreement", batch_id, "-t", "acme")
    assert agreement["approval_rate"]["passed"] == 22
    assert _ok(cli, "review", "prepare", "-t", "acme", "--purpose", "sft")["item_count"] == 0  # queued already
    version = _ok(cli, "datasets", "build", "support", "-t", "acme")
    assert version["example_count"] == 11 and version["created_by"].startswith("cli")
    out = tmp_path / "support.jsonl"
    export = _ok(
        cli, "datasets", "export", "support", "-t", "acme", "--format", "openai", "--version", "1", "--system", "none",
        "-o", str(out),
    )  # fmt: skip
    assert export["lines"] == 11 and cookbook_format_errors(jsonl(out.read_bytes())) == {}
    bedrock = tmp_path / "support-bedrock.jsonl"
    _ok(cli, "datasets", "export", "support", "-t", "acme", "--format", "bedrock-conversation", "--version", "1",
        "-o", str(bedrock))  # fmt: skip
    assert all(bedrock_ok(line, True) for line in jsonl(bedrock.read_bytes()))
    shown = _ok(cli, "datasets", "show", "support", "-t", "acme", "--version", "1")
    assert len(shown["manifest"]["files"]) == 2
    failed = cli.invoke(app, ["datasets", "export", "support", "-t", "acme", "--format", "csv", "--version", "1"])
    assert failed.exit_code == 1 and "format must be one of" in failed.output
    missing = cli.invoke(app, ["review", "batches", "-t", "nobody"])
    assert missing.exit_code == 1 and "no tenant named" in missing.output
