"""The keyword index per collection, on SQLite and PostgreSQL: another collection (of another
tenant) changes neither a collection's BM25 scores nor its ranking; a collection's index goes with
it; the migration moves an existing index; dense search is exact where pgvector is absent."""

from __future__ import annotations

import numpy as np
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bastion.knowledge.dense import vector_backend, vector_literal
from bastion.knowledge.keyword import fts_table
from bastion.knowledge.model import DocumentInput, SearchRequest
from bastion.knowledge.service import KnowledgeService
from bastion.store.db import Database
from bastion.store.migrate import alembic_config, upgrade
from tests.knowledge.conftest import FakeEmbedder, add_tenant

QUERIES = ["volcano lava eruption", "ocean tide survey", "glacier ice forest", "report item3 desert"]
TOPICS = ["volcano lava eruption", "ocean tide current", "forest tree canopy", "desert sand dune", "glacier ice"]


def documents(n: int, prefix: str = "doc") -> list[DocumentInput]:
    return [
        DocumentInput(
            f"Report {i} on {TOPICS[i % 5]}. It records item{i} and a {TOPICS[(i * 3) % 5]} survey.", id=f"{prefix}{i}"
        )
        for i in range(n)
    ]


def noise(n: int) -> list[DocumentInput]:
    """Documents full of the queries' words, long and short: they would move IDF and mean length."""
    return [
        DocumentInput(("volcano ocean tide glacier " * (1 + i % 9)) + f"survey report item{i % 4} desert", id=f"n{i}")
        for i in range(n)
    ]


async def bm25(service: KnowledgeService, tenant: str, collection: str = "kb") -> list[list[tuple[int, float]]]:
    out = []
    for query in QUERIES:
        hits = await service.search(tenant, SearchRequest(query, [collection], k=10, mode="bm25"))
        assert hits, query
        out.append([(hit.chunk_id, hit.retrievers["bm25"].score) for hit in hits])
    return out


def same(before: list[list[tuple[int, float]]], after: list[list[tuple[int, float]]]) -> None:
    for old, new in zip(before, after, strict=True):
        assert [cid for cid, _ in new] == [cid for cid, _ in old]
        assert [score for _, score in new] == pytest.approx([score for _, score in old], rel=1e-9)


async def test_another_collection_changes_neither_scores_nor_ranking(
    database: Database, service: KnowledgeService, tenant: str
) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "kb", documents(40))
    before = await bm25(service, tenant)
    # Another tenant's collection, then one of the same tenant, full of the same words.
    other = await add_tenant(database, "globex")
    await service.create_collection(other, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(other, "kb", noise(120))
    same(before, await bm25(service, tenant))
    await service.create_collection(tenant, "second", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "second", noise(60) + documents(10, "copy"))
    same(before, await bm25(service, tenant))
    # The other tenant's scores are its own too: the same documents alone give the same scores.
    await service.create_collection(tenant, "alone", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "alone", noise(120))
    alone = await bm25(service, tenant, "alone")
    theirs = await bm25(service, other, "kb")
    for mine, its in zip(alone, theirs, strict=True):
        assert [score for _, score in its] == pytest.approx([score for _, score in mine], rel=1e-9)
    # Deleting documents elsewhere, and a whole collection, changes nothing either.
    await service.delete_document(other, "kb", "n0")
    await service.delete_collection(tenant, "second")
    same(before, await bm25(service, tenant))
    counts = await service.index_counts(tenant, "kb")
    assert counts["chunks"] == counts["keyword"] == counts["vectors"] > 0


async def _fts_tables(database: Database) -> set[str]:
    async with database.session() as session:
        rows = await session.execute(
            text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name GLOB 'knowledge_fts*'")
        )
        return {str(name) for name in rows.scalars()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_keeps_one_fts_table_per_collection_and_drops_it_with_the_collection(
    database: Database, service: KnowledgeService, tenant: str
) -> None:
    first = await service.create_collection(tenant, "kb")
    second = await service.create_collection(tenant, "other")
    await service.ingest(tenant, "kb", documents(5))
    await service.ingest(tenant, "other", documents(3))
    names = await _fts_tables(database)
    for col in (first, second):
        assert {fts_table(col.id), fts_table(col.id) + "_insert", fts_table(col.id) + "_delete"} <= names
    async with database.session() as session:
        assert await session.scalar(text(f"SELECT count(*) FROM {fts_table(first.id)}")) == 5
        assert await session.scalar(text(f"SELECT count(*) FROM {fts_table(second.id)}")) == 3
    await service.delete_collection(tenant, "kb")
    names = await _fts_tables(database)
    assert not any(first.id in name for name in names)
    assert fts_table(second.id) in names
    # A collection gone with its tenant (by cascade) leaves its table until the next creation.
    gone = await add_tenant(database, "gone")
    orphan = await service.create_collection(gone, "kb")
    async with database.transaction() as session:
        await session.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": gone})
    assert fts_table(orphan.id) in await _fts_tables(database)
    await service.create_collection(tenant, "third")
    assert not any(orphan.id in name for name in await _fts_tables(database))
    # ... and nothing else: the remaining collection's index still answers.
    hits = await service.search(tenant, SearchRequest("volcano", ["other"], k=5, mode="bm25"))
    assert {hit.document_key for hit in hits} == {"doc0"}
    with pytest.raises(ValueError):
        fts_table("x'; DROP TABLE tenants; --")


async def test_the_migration_moves_an_existing_keyword_index(
    database: Database, service: KnowledgeService, tenant: str
) -> None:
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "kb", documents(30))
    other = await add_tenant(database, "globex")
    await service.create_collection(other, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(other, "kb", noise(20))
    before = await bm25(service, tenant)

    def downgrade(connection: Connection) -> None:
        config = alembic_config(database.engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        # To the revision before the one that moved the index, whichever that is once chained.
        before = ScriptDirectory.from_config(config).get_revision("0012_knowledge_backends").down_revision
        assert isinstance(before, str)
        command.downgrade(config, before)

    async with database.engine.begin() as connection:
        await connection.run_sync(downgrade)
    await upgrade(database.engine)
    same(before, await bm25(service, tenant))
    for owner in (tenant, other):
        counts = await service.index_counts(owner, "kb")
        assert counts["chunks"] == counts["keyword"] == counts["vectors"] > 0
    # New documents after the migration are indexed by the moved triggers.
    await service.ingest(tenant, "kb", [DocumentInput("Zeppelin hangar notes.", id="new")])
    hits = await service.search(tenant, SearchRequest("zeppelin", ["kb"], k=3, mode="bm25"))
    assert [hit.document_key for hit in hits] == ["new"]


async def test_dense_search_is_exact_without_pgvector(
    database: Database, service: KnowledgeService, tenant: str, fake_embedder: FakeEmbedder
) -> None:
    # SQLite never has the extension; this project's PostgreSQL (Debian 12, whose archive has no
    # postgresql-15-pgvector) does not either: the backend says so, and dense search is exact.
    async with database.session() as session:
        installed = database.engine.dialect.name == "postgresql" and (
            await session.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"))
        )
        assert await vector_backend(session) == ("pgvector" if installed else "exact")
    if installed:
        pytest.skip("pgvector is installed here: dense search is approximate (HNSW)")
    await service.create_collection(tenant, "kb", chunk_size=64, chunk_overlap=16)
    await service.ingest(tenant, "kb", documents(50))
    assert (await service.index_counts(tenant, "kb"))["chunks"] == 50
    query = "item7 volcano survey"
    hits = await service.search(tenant, SearchRequest(query, ["kb"], k=50, mode="dense"))
    assert len(hits) == 50
    # Every chunk compared with the query: each hit's cosine is its true one, in descending order,
    # so the ranking is the brute-force one (ties aside).
    wanted = np.asarray(fake_embedder.vector(query))
    true = [float(np.asarray(fake_embedder.vector(hit.text)) @ wanted) for hit in hits]
    assert [hit.retrievers["dense"].score for hit in hits] == pytest.approx(true, abs=1e-6)
    assert true == pytest.approx(sorted(true, reverse=True), abs=1e-6)
    assert true[0] > true[-1]


def test_vectors_reach_pgvector_in_its_text_form() -> None:
    blob = np.asarray([0.5, -0.25, 1.0], dtype="<f4").tobytes()
    assert vector_literal(blob) == "[0.5,-0.25,1.0]"
    assert vector_literal(np.asarray([0.5, -0.25, 1.0], dtype=np.float32)) == "[0.5,-0.25,1.0]"
