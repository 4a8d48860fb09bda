"""With the real embedded MiniLM (offline): chunks are embedded, a paraphrase with no word in
common finds its passage by dense search, and hybrid search agrees with the keywords."""

from __future__ import annotations

import pytest

from bastion.config.settings import LocalModelSettings
from bastion.config.work_settings import KnowledgeSettings
from bastion.knowledge.model import DocumentInput, SearchRequest
from bastion.knowledge.service import KnowledgeService
from bastion.local.embedder import get_embedder
from bastion.store.db import Database

DOCUMENTS = {
    "bread": "Sourdough bread rises because wild yeast and lactic bacteria ferment the dough overnight.",
    "tides": "Ocean tides follow the moon: its gravity pulls the water into two bulges that circle the earth.",
    "cache": "A response cache stores answers keyed by the request, so a repeated question costs nothing.",
}


async def test_a_paraphrase_finds_its_passage_with_the_local_model(database: Database, tenant: str) -> None:
    embedder = get_embedder(LocalModelSettings())
    if not embedder.loadable():
        pytest.skip("the local embedding model is not installed")

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _tokens = await embedder.embed(texts)
        return vectors

    service = KnowledgeService(database, KnowledgeSettings(), embed)
    await service.create_collection(tenant, "kb")
    await service.ingest(tenant, "kb", [DocumentInput(text, id=key) for key, text in DOCUMENTS.items()])
    # No word in common with the passage: only the dense retriever can find it.
    hits = await service.search(tenant, SearchRequest("why does the sea rise and fall?", ["kb"], mode="dense"))
    assert hits[0].document_key == "tides"
    assert hits[0].cosine is not None and hits[0].cosine > 0.3
    for mode in ("bm25", "hybrid"):
        hits = await service.search(tenant, SearchRequest("what pulls ocean water into tides", ["kb"], mode=mode))
        assert hits[0].document_key == "tides"
