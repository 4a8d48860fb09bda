"""Answers with citations over the embedded MiniLM (offline): a paraphrase with no word in common
with its passage is retrieved by dense search through the gateway, and the answer's citation maps
to that passage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.knowledge.model import DocumentInput
from bastion.store.db import Database
from tests.guard_stages import support as guard_support
from tests.guard_stages.support import (
    MODEL,
    UPSTREAM,
    GuardEnv,
    GuardFake,
    guard_settings,
)
from tests.support.harness import running_gateway

#: The guard suite's fake upstream (one per session), reset for each test.
guard_fake_upstream = guard_support.guard_fake_upstream
guard_fake = guard_support.guard_fake

pytestmark = pytest.mark.local_model("embedder")

DOCUMENTS = {
    "bread": "Sourdough bread rises because wild yeast and lactic bacteria ferment the dough overnight.",
    "tides": "Ocean tides follow the moon: its gravity pulls the water into two bulges that circle the earth.",
}


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """One backend: the model is the point here."""
    return sqlite_database_url


@pytest.fixture
async def guard_env(
    database: Database, database_url: str, tmp_path: Path, guard_fake: GuardFake
) -> AsyncIterator[GuardEnv]:
    async with running_gateway(guard_settings(database_url, tmp_path / "data", guard_fake)) as env:
        yield GuardEnv(env.gateway, env.client, database)


async def test_a_paraphrase_is_cited_from_the_passage_the_local_model_found(
    guard_env: GuardEnv,
    guard_fake: GuardFake,
) -> None:
    caller = await guard_env.tenant()
    knowledge = guard_env.gateway.services.knowledge
    assert knowledge is not None
    await knowledge.create_collection(caller.tenant_id, "kb")
    await knowledge.ingest(caller.tenant_id, "kb", [DocumentInput(text, id=key) for key, text in DOCUMENTS.items()])
    guard_fake.answer(UPSTREAM, "The moon does it [1].")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "why does the sea rise and fall?"}],
        "bastion": {"knowledge": {"collections": ["kb"], "k": 1, "mode": "dense"}},
    }
    response = await guard_env.chat(caller, body)
    assert response.status_code == 200, response.text
    field = response.json()["bastion"]
    assert field["sources"][0]["document"] == "tides" and field["sources"][0]["cosine"] > 0.3
    assert field["citations"][0]["document_id"] == field["sources"][0]["document_id"]
