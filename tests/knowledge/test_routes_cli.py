"""``bastion knowledge`` has a command for every route of /v1/knowledge (typer's CliRunner, SQLite
and PostgreSQL, the suite's embedder in place of the local model): create, list, show and delete
collections; ingest files of every format; list, show and delete documents; delete by filter;
search; the same JSON shapes as the API, and clear errors."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.cli import knowledge as knowledge_cli
from bastion.cli.main import app
from bastion.config.settings import Settings
from bastion.knowledge.service import EmbedTexts
from bastion.store.db import Database
from tests.knowledge.conftest import FakeEmbedder, add_tenant
from tests.knowledge.routes_support import PaddedEmbedder

DATA = Path(__file__).parent / "data"


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "bastion.yaml"
    data = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "local": {"enabled": False},
            "auth": {"default_tenant": "acme"}}  # fmt: skip
    config.write_text(yaml.safe_dump(data))
    for name in [name for name in os.environ if name.startswith("BASTION_")]:
        monkeypatch.delenv(name)
    fake = PaddedEmbedder(FakeEmbedder())

    def local_embed(settings: Settings) -> EmbedTexts:
        return fake

    monkeypatch.setattr(knowledge_cli, "_local_embed", local_embed)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True, code: int | None = None, stdin: str | None = None) -> Any:
        result = runner.invoke(app, ["knowledge", *args, "--config", str(config)], input=stdin)
        assert "Traceback" not in result.output, result.output
        if code is not None:
            assert result.exit_code == code, (args, result.output)
        else:
            assert (result.exit_code == 0) == ok, (args, result.output, result.exception)
        return result

    return invoke


async def test_every_route_has_its_command(database: Database, cli: Any) -> None:
    await add_tenant(database, "acme")
    await add_tenant(database, "globex")
    run = asyncio.to_thread  # the CLI runs its own event loop

    created = json.loads((await run(cli, "create", "files", "--description", "Fixtures", "--metadata",
                                    '{"team": "docs"}', "--json")).stdout)  # fmt: skip
    assert created["name"] == "files" and created["metadata"] == {"team": "docs"}
    assert "exists" in (await run(cli, "create", "files", code=1)).output
    await run(cli, "create", "other", "--tenant", "globex")

    paths = [str(DATA / name) for name in ("notes.txt", "guide.md", "page.html", "survey.pdf")]
    ingest = ["ingest", "files", *paths, "--metadata", '{"src": "disk"}', "--json"]
    ingested = json.loads((await run(cli, *ingest)).stdout)
    assert [r["status"] for r in ingested] == ["created"] * 4
    again = (await run(cli, "ingest", "files", paths[0], "--metadata", '{"src": "disk"}')).stdout
    assert again.startswith("unchanged") and "embedded=0" in again
    await run(cli, "ingest", "files", paths[0], "--id", "named", "--format", "text", "--metadata", '{"src": "x"}')

    listed = json.loads((await run(cli, "list", "--json")).stdout)
    assert [c["name"] for c in listed] == ["files"] and listed[0]["documents"] == 5  # not globex's
    shown = json.loads((await run(cli, "show", "files")).stdout)
    assert shown["index"]["chunks"] == shown["index"]["keyword"] == shown["index"]["vectors"] > 0

    documents = json.loads((await run(cli, "documents", "files", "--json")).stdout)
    by_key = {Path(d["id"]).name: d for d in documents}
    assert {name: d["format"] for name, d in by_key.items()} == {
        "named": "text", "notes.txt": "text", "guide.md": "markdown", "page.html": "html", "survey.pdf": "pdf",
    }  # fmt: skip
    pdf_key = by_key["survey.pdf"]["id"]
    assert json.loads((await run(cli, "document", "files", pdf_key)).stdout)["format"] == "pdf"
    page = json.loads((await run(cli, "documents", "files", "--limit", "2", "--json")).stdout)
    after = json.loads((await run(cli, "documents", "files", "--limit", "10", "--after", page[-1]["id"],
                                  "--json")).stdout)  # fmt: skip
    assert len(page) + len(after) == 5

    hits = [json.loads(line) for line in (await run(cli, "search", "files", "seal pups outer sandbank", "--k", "1",
                                                   "--mode", "bm25")).stdout.splitlines()]  # fmt: skip
    assert hits[0]["provenance"]["document"] == pdf_key and hits[0]["provenance"]["page"] == 2
    filtered = (await run(cli, "search", "files", "notes", "--filters", '{"src": "x"}', "--mode", "hybrid",
                          "--mmr-lambda", "0.5", "--threshold", "-1", "--weights", "1,0.5")).stdout  # fmt: skip
    assert {json.loads(line)["provenance"]["document"] for line in filtered.splitlines()} == {"named"}
    assert "mode is bm25" in (await run(cli, "search", "files", "x", "--mode", "fuzzy", code=2)).output
    assert "no knowledge collection" in (await run(cli, "search", "other", "x", code=1)).output  # globex's

    assert "deleted 1 documents" in (await run(cli, "delete-where", "files", "--filter", '{"src": "x"}')).stdout
    assert "non-empty filter" in (await run(cli, "delete-where", "files", "--filter", "{}", code=2)).output
    await run(cli, "delete-document", "files", pdf_key)
    assert "no document" in (await run(cli, "document", "files", pdf_key, code=1)).output
    assert len(json.loads((await run(cli, "documents", "files", "--json")).stdout)) == 3

    bad = DATA.parent / "test_formats.py"
    assert "cannot tell the format" in (await run(cli, "ingest", "files", str(bad), code=2)).output
    await run(cli, "delete", "files", code=1, stdin="n\n")  # asked, refused: nothing deleted
    await run(cli, "show", "files")
    await run(cli, "delete", "files", "--yes")
    assert "no knowledge collection" in (await run(cli, "show", "files", code=1)).output
