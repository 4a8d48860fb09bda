"""Ingestion on SQLite and PostgreSQL: idempotent re-ingestion (no embeddings), a changed document
replaces its previous version atomically, deletes by id and by filter, chunk rows, keyword rows
and vectors always equal, tenant isolation, and the ingestion job."""

from __future__ import annotations

import pytest

from bastion.errors import Conflict, InvalidRequest, NotFound
from bastion.jobs.model import SUCCEEDED
from bastion.jobs.registry import JobRegistry
from bastion.knowledge.ingest_job import JOB_KIND, IngestJob, submit_ingest
from bastion.knowledge.model import DocumentInput, SearchRequest
from bastion.knowledge.service import KnowledgeService
from bastion.store.db import Database
from tests.jobs.support import service as job_service
from tests.knowledge.conftest import FakeEmbedder, add_tenant
from tests.support.harness import wait_until

TEXT = " ".join(f"Sentence number {i} is about subject{i % 7} and topic{i % 3}." for i in range(60))


def doc(key: str, text: str = TEXT, **metadata: object) -> DocumentInput:
    return DocumentInput(text, id=key, metadata=dict(metadata))


async def counts_agree(service: KnowledgeService, tenant: str, collection: str = "kb") -> int:
    counts = await service.index_counts(tenant, collection)
    assert counts["chunks"] == counts["keyword"] == counts["vectors"], counts
    return counts["chunks"]


async def test_reingesting_an_unchanged_document_embeds_nothing(
    service: KnowledgeService, tenant: str, fake_embedder: FakeEmbedder
) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    [first] = await service.ingest(tenant, "kb", [doc("a")])
    assert first.status == "created" and first.chunks > 3 and first.embedded == first.chunks
    embedded = fake_embedder.texts
    chunks = await counts_agree(service, tenant)
    [again] = await service.ingest(tenant, "kb", [doc("a")])
    assert again.status == "unchanged" and again.embedded == 0 and again.document_id == first.document_id
    assert fake_embedder.texts == embedded
    assert await counts_agree(service, tenant) == chunks
    # New metadata, same content: recorded, still nothing embedded.
    [meta] = await service.ingest(tenant, "kb", [doc("a", team="red")])
    assert meta.status == "metadata" and meta.version == 2
    assert fake_embedder.texts == embedded
    assert await counts_agree(service, tenant) == chunks
    assert (await service.get_document(tenant, "kb", "a")).metadata == {"team": "red"}


async def test_a_changed_document_replaces_its_previous_version(
    service: KnowledgeService, tenant: str, fake_embedder: FakeEmbedder
) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=0)
    await service.ingest(tenant, "kb", [doc("a", TEXT + " Oldmarker appears once.")])
    before = fake_embedder.texts
    [changed] = await service.ingest(tenant, "kb", [doc("a", TEXT + " Newmarker appears now.")])
    assert changed.status == "updated" and changed.version == 2
    # Only the last chunk changed: the others keep their vectors.
    assert changed.embedded == 1 and fake_embedder.texts == before + 1
    for mode in ("bm25", "dense", "hybrid"):
        old = await service.search(tenant, SearchRequest("Oldmarker", ["kb"], k=50, mode=mode))
        assert all("Oldmarker" not in hit.text for hit in old)
        new = await service.search(tenant, SearchRequest("Newmarker", ["kb"], k=3, mode=mode))
        assert "Newmarker" in new[0].text and new[0].document_version == 2
    assert await counts_agree(service, tenant) == changed.chunks
    document = await service.get_document(tenant, "kb", "a")
    assert document.version == 2 and document.chunks == changed.chunks


async def test_deleting_by_id_and_by_filter_leaves_no_hits(service: KnowledgeService, tenant: str) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    docs = [doc(f"d{i}", f"Shared words here. Document {i} mentions uniq{i}.", group=f"g{i % 3}") for i in range(30)]
    await service.ingest(tenant, "kb", docs)
    await counts_agree(service, tenant)
    await service.delete_document(tenant, "kb", "d4")
    assert await counts_agree(service, tenant) == 29 * 1
    removed = await service.delete_documents(tenant, "kb", {"group": "g1"})
    assert removed == 10 - (1 if 4 % 3 == 1 else 0)
    remaining = await counts_agree(service, tenant)
    assert remaining == 30 - 1 - removed
    for mode in ("bm25", "dense", "hybrid"):
        hits = await service.search(tenant, SearchRequest("shared words document uniq4", ["kb"], k=100, mode=mode))
        keys = {hit.document_key for hit in hits}
        assert "d4" not in keys
        assert not any(hit.metadata.get("group") == "g1" for hit in hits)
        assert len(keys) == remaining
    with pytest.raises(NotFound):
        await service.delete_document(tenant, "kb", "d4")
    with pytest.raises(InvalidRequest):
        await service.delete_documents(tenant, "kb", {})


async def test_deleting_a_collection_removes_its_chunks(service: KnowledgeService, tenant: str) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "kb", [doc("a"), doc("b", "Other text entirely.")])
    await service.create_collection(tenant, "other")
    await service.ingest(tenant, "other", [doc("c", "Kept text.")])
    await service.delete_collection(tenant, "kb")
    with pytest.raises(NotFound):
        await service.get_collection(tenant, "kb")
    assert await counts_agree(service, tenant, "other") == 1
    with pytest.raises(Conflict):
        await service.create_collection(tenant, "other")


async def test_tenants_see_only_their_own_collections(
    database: Database, service: KnowledgeService, tenant: str
) -> None:
    other = await add_tenant(database, "globex")
    await service.create_collection(tenant, "kb")
    await service.ingest(tenant, "kb", [doc("secret", "The launch code is swordfish.")])
    await service.create_collection(other, "kb")  # the same name is fine in another tenant
    await service.ingest(other, "kb", [doc("public", "Nothing to see.")])
    for mode in ("bm25", "dense", "hybrid"):
        hits = await service.search(other, SearchRequest("launch code swordfish", ["kb"], k=10, mode=mode))
        assert [hit.document_key for hit in hits] in ([], ["public"])
    mine = await service.get_collection(tenant, "kb")
    with pytest.raises(NotFound):
        await service.get_collection(other, mine.id)  # not even by id
    with pytest.raises(NotFound):
        await service.search(other, SearchRequest("swordfish", [mine.id]))
    with pytest.raises(NotFound):
        await service.get_document(other, "kb", "secret")
    with pytest.raises(NotFound):
        await service.delete_document(other, "kb", "secret")
    assert [c.name for c in await service.list_collections(other)] == ["kb"]
    assert (await service.list_collections(other))[0].documents == 1
    assert [d.external_id for d in await service.list_documents(tenant, "kb")] == ["secret"]


async def test_a_bad_document_is_reported_and_the_others_are_ingested(service: KnowledgeService, tenant: str) -> None:
    await service.create_collection(tenant, "kb")
    results = await service.ingest(
        tenant,
        "kb",
        [doc("good"), DocumentInput("x", id="odd", format="pdf-ish"), DocumentInput("no key"), doc("also")],
    )
    assert [r.status for r in results] == ["created", "error", "error", "created"]
    assert "unsupported document format" in (results[1].error or "")
    await counts_agree(service, tenant)


async def test_ingestion_runs_as_a_job_with_progress_and_per_document_errors(
    database: Database, service: KnowledgeService, tenant: str
) -> None:
    registry = JobRegistry()
    registry.register(JOB_KIND, IngestJob(service).run)
    jobs = job_service(database, registry, workers=1)
    await jobs.start()
    try:
        collection = await service.create_collection(tenant, "kb")
        documents = [doc(f"d{i}", f"Text of document {i}.") for i in range(20)]
        documents.insert(5, DocumentInput("x", id="bad", format="nope"))
        job_id = await submit_ingest(jobs, tenant, collection.id, documents)

        async def finished():  # type: ignore[no-untyped-def]
            job = await jobs.get(job_id)
            return job if job.finished else None

        job = await wait_until(finished, 20.0, what="the ingestion job finished")
        assert job.state == SUCCEEDED
        assert job.progress_done == job.progress_total == 21
        assert job.result["items"] == {"succeeded": 20, "failed": 1}
        items = await jobs.items(job_id, 100, None)
        failed = [item for item in items if item.error is not None]
        assert [item.key for item in failed] == ["000005:bad"]
        assert (await service.get_collection(tenant, "kb")).documents == 20
    finally:
        await jobs.stop()
