"""Database operations of the knowledge service: collections, documents and their chunks.

A document's chunks (with their vectors; the keyword index follows by trigger) are replaced in the
same transaction that updates the document row and bumps the collection's ``index_version``, so a
reader sees either the old version or the new one, never a mix, and caches notice the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.knowledge.keyword import fts_table
from bastion.knowledge.model import CollectionView, DocumentView
from bastion.knowledge.models import KnowledgeChunk, KnowledgeCollection, KnowledgeDocument, KnowledgePosting
from bastion.store.models import utcnow


def collection_view(row: KnowledgeCollection, documents: int = 0, chunks: int = 0) -> CollectionView:
    return CollectionView(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        chunk_size=row.chunk_size,
        chunk_overlap=row.chunk_overlap,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        index_version=row.index_version,
        metadata=dict(row.collection_metadata or {}),
        documents=documents,
        chunks=chunks,
    )


def document_view(row: KnowledgeDocument) -> DocumentView:
    return DocumentView(
        id=row.id,
        collection_id=row.collection_id,
        external_id=row.external_id,
        uri=row.uri,
        title=row.title,
        format=row.format,
        content_hash=row.content_hash,
        version=row.version,
        metadata=dict(row.document_metadata or {}),
        chunks=row.chunk_count,
    )


async def _named_or_by_id(session: AsyncSession, model: Any, scope: Any, name: Any, ref: str) -> Any:
    """The row of ``model`` within ``scope`` whose ``name`` is ``ref``, else the one whose id is."""
    for condition in (name == ref, model.id == ref):
        row = (await session.execute(select(model).where(scope, condition))).scalar_one_or_none()
        if row is not None:
            return row
    return None


async def find_collection(session: AsyncSession, tenant_id: str, ref: str) -> KnowledgeCollection | None:
    """A tenant's collection by name, or by id."""
    row: KnowledgeCollection | None = await _named_or_by_id(
        session, KnowledgeCollection, KnowledgeCollection.tenant_id == tenant_id, KnowledgeCollection.name, ref
    )
    return row


async def collection_counts(session: AsyncSession, collection_id: str) -> tuple[int, int]:
    documents = await session.scalar(
        select(func.count()).select_from(KnowledgeDocument).where(KnowledgeDocument.collection_id == collection_id)
    )
    chunks = await session.scalar(
        select(func.count()).select_from(KnowledgeChunk).where(KnowledgeChunk.collection_id == collection_id)
    )
    return int(documents or 0), int(chunks or 0)


async def bump_version(session: AsyncSession, collection_id: str) -> None:
    await session.execute(
        update(KnowledgeCollection)
        .where(KnowledgeCollection.id == collection_id)
        .values(index_version=KnowledgeCollection.index_version + 1, updated_at=utcnow())
    )


async def find_document(session: AsyncSession, collection_id: str, key: str) -> KnowledgeDocument | None:
    """A document by the key it was ingested under, or by its id."""
    row: KnowledgeDocument | None = await _named_or_by_id(
        session, KnowledgeDocument, KnowledgeDocument.collection_id == collection_id, KnowledgeDocument.external_id, key
    )
    return row


async def chunk_vectors(session: AsyncSession, document_id: str) -> dict[str, bytes]:
    """text hash -> vector of a document's current chunks (reused when a new version keeps a chunk)."""
    rows = await session.execute(
        select(KnowledgeChunk.text_hash, KnowledgeChunk.embedding).where(KnowledgeChunk.document_id == document_id)
    )
    return {row[0]: row[1] for row in rows}


async def write_chunks(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(KnowledgeChunk), list(rows))


async def drop_chunks(session: AsyncSession, document_id: str) -> None:
    await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))


async def delete_documents(
    session: AsyncSession, collection_id: str, condition: ColumnElement[bool] | None, document_id: str | None = None
) -> int:
    """Delete documents (their chunks, vectors and keyword rows cascade); how many went."""
    statement = select(KnowledgeDocument.id).where(KnowledgeDocument.collection_id == collection_id)
    if condition is not None:
        statement = statement.where(condition)
    if document_id is not None:
        statement = statement.where(KnowledgeDocument.id == document_id)
    ids = list((await session.execute(statement)).scalars())
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        # Chunks first, explicitly: the keyword triggers fire per row either way.
        await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id.in_(part)))
        await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id.in_(part)))
    if ids:
        await bump_version(session, collection_id)
    return len(ids)


async def keyword_rows(session: AsyncSession, collection_id: str) -> int:
    """Chunks of the collection present in the keyword index, plus any keyword rows that are not
    the collection's chunks (there must be none): equal to the chunk count when the two agree."""
    if session.get_bind().dialect.name == "sqlite":
        name = fts_table(collection_id)  # a validated identifier
        chunk_ids = "SELECT id FROM knowledge_chunks WHERE collection_id = :c"
        indexed = await session.scalar(
            text(f"SELECT count(*) FROM {name} WHERE rowid IN ({chunk_ids})"), {"c": collection_id}
        )
        orphans = await session.scalar(
            text(f"SELECT count(*) FROM {name} WHERE rowid NOT IN ({chunk_ids})"), {"c": collection_id}
        )
        return int(indexed or 0) + int(orphans or 0)
    indexed = await session.scalar(
        select(func.count(func.distinct(KnowledgePosting.chunk_id))).where(
            KnowledgePosting.collection_id == collection_id
        )
    )
    # A chunk of stop words and punctuation alone has no postings, legitimately.
    empty = await session.scalar(
        select(func.count())
        .select_from(KnowledgeChunk)
        .where(KnowledgeChunk.collection_id == collection_id, KnowledgeChunk.term_count == 0)
    )
    return int(indexed or 0) + int(empty or 0)
