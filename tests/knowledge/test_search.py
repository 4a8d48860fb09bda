"""Retrieval on SQLite and PostgreSQL: filters before ranking (k hits at 1% selectivity), MMR
(lambda 1 is the plain ranking; planted near-duplicates are spread out), the cosine threshold at
1.01 and -1, hybrid fusion, and provenance on every hit."""

from __future__ import annotations

import pytest

from bastion.errors import InvalidRequest
from bastion.knowledge.model import DocumentInput, Fusion, Mode, SearchRequest
from bastion.knowledge.service import KnowledgeService

MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
TOPICS = ["volcano lava eruption", "ocean tide current", "forest tree canopy", "desert sand dune", "glacier ice"]


def corpus(n: int) -> list[DocumentInput]:
    return [
        DocumentInput(
            f"Report {i} on {TOPICS[i % 5]}. It records item{i} and the {TOPICS[(i * 3) % 5]} survey.",
            id=f"doc{i}",
            metadata={"shard": i % 100, "kind": "rare" if i % 100 == 0 else "common", "year": 2000 + i % 20},
        )
        for i in range(n)
    ]


@pytest.fixture
async def loaded(service: KnowledgeService, tenant: str) -> KnowledgeService:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    results = await service.ingest(tenant, "kb", corpus(200), group=200)
    assert all(r.status == "created" for r in results)
    return service


async def test_filters_apply_before_ranking_so_k_hits_come_back(loaded: KnowledgeService, tenant: str) -> None:
    for mode in MODES:
        await _filters_apply_before_ranking(loaded, tenant, mode)


async def _filters_apply_before_ranking(loaded: KnowledgeService, tenant: str, mode: Mode) -> None:
    # 2 of 200 documents (1%) are "rare"; the query favours others.
    request = SearchRequest("ocean tide current survey", ["kb"], k=2, mode=mode, filters={"kind": "rare"})
    hits = await loaded.search(tenant, request)
    assert len(hits) == 2
    assert {hit.document_key for hit in hits} == {"doc0", "doc100"}
    # $in and numbers
    request = SearchRequest("report", ["kb"], k=5, mode=mode, filters={"shard": {"$in": [7, 8]}, "year": 2007})
    hits = await loaded.search(tenant, request)
    assert {hit.document_key for hit in hits} == {"doc7", "doc107"}


async def test_mmr_with_lambda_one_is_the_plain_ranking(loaded: KnowledgeService, tenant: str) -> None:
    for mode in MODES:
        await _mmr_lambda_one(loaded, tenant, mode)


async def _mmr_lambda_one(loaded: KnowledgeService, tenant: str, mode: Mode) -> None:
    plain = await loaded.search(tenant, SearchRequest("ocean tide report item12", ["kb"], k=10, mode=mode, fetch_k=50))
    mmr = await loaded.search(
        tenant, SearchRequest("ocean tide report item12", ["kb"], k=10, mode=mode, fetch_k=50, mmr_lambda=1.0)
    )
    assert [h.chunk_id for h in mmr] == [h.chunk_id for h in plain]


async def test_mmr_keeps_at_most_one_planted_near_duplicate_in_the_top_five(
    loaded: KnowledgeService, tenant: str
) -> None:
    # Six copies of one passage (whitespace aside), and four others each relevant in part.
    text = "Quasar telescope spectrum redshift galaxy observatory notes."
    duplicates = [DocumentInput(text + " " * i + ("." * (i % 2)), id=f"dup{i}") for i in range(6)]
    distinct = [
        DocumentInput("Quasar galaxy mergers tonight.", id="other1"),
        DocumentInput("Telescope spectrum calibration lamps.", id="other2"),
        DocumentInput("Redshift quasar cosmology maps.", id="other3"),
        DocumentInput("Galaxy spectrum dust lanes.", id="other4"),
    ]
    await loaded.ingest(tenant, "kb", duplicates + distinct)
    query = "quasar telescope spectrum redshift galaxy"
    for mode in MODES:
        plain = await loaded.search(tenant, SearchRequest(query, ["kb"], k=5, mode=mode))
        assert sum(hit.document_key.startswith("dup") for hit in plain) >= 4  # without MMR they crowd the top
        hits = await loaded.search(tenant, SearchRequest(query, ["kb"], k=5, mode=mode, mmr_lambda=0.5))
        assert len(hits) == 5
        assert sum(hit.document_key.startswith("dup") for hit in hits) == 1, mode


async def test_threshold_applies_to_the_dense_cosine(loaded: KnowledgeService, tenant: str) -> None:
    for mode in MODES:
        await _threshold(loaded, tenant, mode)


async def _threshold(loaded: KnowledgeService, tenant: str, mode: Mode) -> None:
    query = "glacier ice report"
    assert await loaded.search(tenant, SearchRequest(query, ["kb"], k=10, mode=mode, threshold=1.01)) == []
    everything = await loaded.search(tenant, SearchRequest(query, ["kb"], k=10, mode=mode, threshold=-1.0))
    plain = await loaded.search(tenant, SearchRequest(query, ["kb"], k=10, mode=mode))
    assert [h.chunk_id for h in everything] == [h.chunk_id for h in plain]
    assert all(hit.cosine is not None and -1.0 <= hit.cosine <= 1.0 for hit in everything)
    middle = sorted(hit.cosine for hit in everything if hit.cosine is not None)[5]
    some = await loaded.search(tenant, SearchRequest(query, ["kb"], k=10, mode=mode, threshold=middle))
    assert some and all(hit.cosine is not None and hit.cosine >= middle for hit in some)


async def test_hybrid_hits_carry_each_retrievers_score_and_full_provenance(
    loaded: KnowledgeService, tenant: str
) -> None:
    for fusion in ("rrf", "linear"):
        await _provenance(loaded, tenant, fusion)


async def _provenance(loaded: KnowledgeService, tenant: str, fusion: Fusion) -> None:
    collection = await loaded.get_collection(tenant, "kb")
    hits = await loaded.search(tenant, SearchRequest("item42 forest tree", ["kb"], k=5, fusion=fusion))
    assert len(hits) == 5
    top = hits[0]
    assert top.document_key == "doc42"
    assert set(top.retrievers) == {"bm25", "dense"}
    assert top.retrievers["bm25"].rank == 1
    assert [hit.rank for hit in hits] == [1, 2, 3, 4, 5]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    document = await loaded.get_document(tenant, "kb", "doc42")
    provenance = top.provenance()
    assert provenance["collection"] == "kb" and provenance["collection_id"] == collection.id
    assert provenance["document_id"] == document.id and provenance["document"] == "doc42"
    assert provenance["content_hash"] == document.content_hash
    assert provenance["index_version"] == collection.index_version
    assert provenance["start"] == 0 and provenance["end"] == len(top.text)
    assert provenance["page"] is None and isinstance(provenance["chunk_id"], int)


async def test_bm25_ranks_by_idf(loaded: KnowledgeService, tenant: str) -> None:
    # "item7" occurs in one document, "report" in all: the rare term decides.
    hits = await loaded.search(tenant, SearchRequest("report item7", ["kb"], k=3, mode="bm25"))
    assert hits[0].document_key == "doc7"
    assert hits[0].retrievers["bm25"].score > 2 * hits[1].retrievers["bm25"].score


async def test_bad_requests_are_refused_and_stop_words_find_nothing(loaded: KnowledgeService, tenant: str) -> None:
    assert await loaded.search(tenant, SearchRequest("the of and", ["kb"], mode="bm25")) == []
    with pytest.raises(InvalidRequest):
        await loaded.search(tenant, SearchRequest("  ", ["kb"]))
    with pytest.raises(InvalidRequest):
        await loaded.search(tenant, SearchRequest("x", ["kb"], filters={"kind": {"$regex": "r"}}))
    with pytest.raises(InvalidRequest):
        await loaded.search(tenant, SearchRequest("x", ["kb"], k=0))
