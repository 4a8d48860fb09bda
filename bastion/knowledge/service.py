"""The knowledge service: collections, idempotent ingestion, deletion and retrieval, per tenant.

Every call names its tenant, and every query is scoped by it: a collection name resolves only
among the tenant's own. Ingestion embeds outside any transaction, then writes each document in one
transaction of its own (see ``store``). Retrieval is ``bm25`` (in the database), ``dense`` (exact,
in process) or ``hybrid`` (both, fused), with optional MMR and a threshold on the dense cosine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.config.work_settings import KnowledgeSettings
from bastion.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from bastion.knowledge import store
from bastion.knowledge.chunking import Chunk, Chunker
from bastion.knowledge.dense import DenseIndex, Vector, to_bytes
from bastion.knowledge.extract import extractor_for
from bastion.knowledge.filters import metadata_condition
from bastion.knowledge.keyword import KeywordIndex, create_keyword_index, drop_keyword_index
from bastion.knowledge.model import (
    CollectionView,
    DocumentInput,
    DocumentView,
    Hit,
    IngestResult,
    SearchRequest,
)
from bastion.knowledge.models import KnowledgeChunk, KnowledgeCollection, KnowledgeDocument
from bastion.knowledge.search import run_search
from bastion.knowledge.tokenizer import TokenOffsets, minilm_tokenizer
from bastion.store.db import Database
from bastion.store.models import utcnow

#: Texts -> unit-length vectors, in order (the local MiniLM, or any embedding model).
EmbedTexts = Callable[[list[str]], Awaitable[list[list[float]]]]
Progress = Callable[[int, int], None]


def content_hash(content: bytes | str) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class _Prepared:
    spec: DocumentInput
    key: str
    hash: str
    text: str
    title: str | None
    chunks: list[Chunk]
    existing_id: str | None
    reusable: dict[str, bytes]
    vectors: dict[str, bytes]
    #: Chunk text hashes whose vectors were computed for this ingestion.
    fresh: set[str]


class KnowledgeService:
    def __init__(
        self,
        db: Database,
        settings: KnowledgeSettings,
        embed: EmbedTexts,
        *,
        model: str = "all-MiniLM-L6-v2",
        dimensions: int = 384,
        tokenizer: TokenOffsets | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.embed = embed
        self.model = model
        self.dimensions = dimensions
        self._tokenizer = tokenizer
        self.keyword = KeywordIndex(k1=settings.bm25_k1, b=settings.bm25_b)
        self.dense = DenseIndex(dimensions)

    @property
    def tokenizer(self) -> TokenOffsets:
        if self._tokenizer is None:
            self._tokenizer = minilm_tokenizer()
        return self._tokenizer

    # -- collections ------------------------------------------------------------------------------

    async def create_collection(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CollectionView:
        size = chunk_size if chunk_size is not None else self.settings.chunk_size
        overlap = chunk_overlap if chunk_overlap is not None else min(self.settings.chunk_overlap, size // 2)
        try:
            Chunker(self.tokenizer, size, overlap)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if not name or len(name) > 128:
            raise InvalidRequest("a collection name has 1 to 128 characters")
        row = KnowledgeCollection(
            tenant_id=tenant_id,
            name=name,
            description=description,
            chunk_size=size,
            chunk_overlap=overlap,
            embedding_model=self.model,
            dimensions=self.dimensions,
            index_version=0,
            collection_metadata=metadata or {},
        )
        try:
            async with self.db.transaction() as session:
                session.add(row)
                await session.flush()
                await create_keyword_index(session, row.id)
                await self.dense.create_index(session, row.id, row.dimensions)
        except IntegrityError:
            raise Conflict(f"a collection named {name!r} exists") from None
        return store.collection_view(row)

    async def _collection(self, session: AsyncSession, tenant_id: str, ref: str) -> KnowledgeCollection:
        row = await store.find_collection(session, tenant_id, ref)
        if row is None:
            raise NotFound(f"no knowledge collection {ref!r}")
        return row

    async def get_collection(self, tenant_id: str, ref: str) -> CollectionView:
        async with self.db.session() as session:
            row = await self._collection(session, tenant_id, ref)
            return store.collection_view(row, *await store.collection_counts(session, row.id))

    async def list_collections(self, tenant_id: str) -> list[CollectionView]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(KnowledgeCollection)
                    .where(KnowledgeCollection.tenant_id == tenant_id)
                    .order_by(KnowledgeCollection.name)
                )
            ).scalars()
            return [store.collection_view(row, *await store.collection_counts(session, row.id)) for row in rows]

    async def delete_collection(self, tenant_id: str, ref: str) -> None:
        async with self.db.transaction() as session:
            row = await self._collection(session, tenant_id, ref)
            await store.delete_documents(session, row.id, None)
            await session.delete(row)
            await drop_keyword_index(session, row.id)
            await self.dense.drop_index(session, row.id)
        self.dense.invalidate(row.id)

    # -- documents --------------------------------------------------------------------------------

    async def ingest(
        self,
        tenant_id: str,
        collection: str,
        documents: Sequence[DocumentInput],
        *,
        progress: Progress | None = None,
        group: int = 32,
    ) -> list[IngestResult]:
        """Ingest documents (each in its own transaction); an error in one is reported in its
        result and does not stop the others. ``progress(done, total)`` after each group."""
        async with self.db.session() as session:
            row = await self._collection(session, tenant_id, collection)
            col = store.collection_view(row)
        chunker = Chunker(self.tokenizer, col.chunk_size, col.chunk_overlap)
        results: list[IngestResult] = []
        for start in range(0, len(documents), group):
            results.extend(await self._ingest_group(col, chunker, documents[start : start + group]))
            if progress is not None:
                progress(len(results), len(documents))
        return results

    async def _ingest_group(
        self, col: CollectionView, chunker: Chunker, specs: Sequence[DocumentInput]
    ) -> list[IngestResult]:
        results: dict[int, IngestResult] = {}
        prepared: dict[int, _Prepared] = {}
        for index, spec in enumerate(specs):
            try:
                outcome = await self._prepare(col, chunker, spec)
            except (InvalidRequest, PayloadTooLarge) as exc:
                results[index] = IngestResult(spec.key or f"#{index}", "error", error=exc.message, error_code=exc.code)
                continue
            if isinstance(outcome, IngestResult):
                results[index] = outcome
            else:
                prepared[index] = outcome
        await self._embed(prepared.values())
        for index, item in prepared.items():
            try:
                results[index] = await self._write(col, item)
            except IntegrityError:
                results[index] = IngestResult(item.key, "error", error="written concurrently by another ingestion")
        return [results[index] for index in range(len(specs))]

    async def _prepare(self, col: CollectionView, chunker: Chunker, spec: DocumentInput) -> _Prepared | IngestResult:
        key = spec.key
        if not key:
            raise InvalidRequest("a document needs an id or a uri")
        size = len(spec.content.encode("utf-8")) if isinstance(spec.content, str) else len(spec.content)
        if size > self.settings.max_document_bytes:
            raise PayloadTooLarge(f"the document is over {self.settings.max_document_bytes} bytes")
        digest = content_hash(spec.content)
        async with self.db.session() as session:
            existing = await store.find_document(session, col.id, key)
            if existing is not None and existing.external_id != key:
                existing = None  # matched by internal id: a new key is a new document
            if existing is not None and existing.content_hash == digest:
                if existing.document_metadata == spec.metadata and (spec.title is None or spec.title == existing.title):
                    return IngestResult(key, "unchanged", existing.id, existing.version, existing.chunk_count)
                # The transaction begun by the read above: metadata only, nothing re-embedded.
                existing.document_metadata = dict(spec.metadata)
                existing.title = spec.title or existing.title
                existing.uri = spec.uri or existing.uri
                existing.version += 1
                existing.updated_at = utcnow()
                await store.bump_version(session, col.id)
                await session.commit()
                return IngestResult(key, "metadata", existing.id, existing.version, existing.chunk_count)
            reusable = await store.chunk_vectors(session, existing.id) if existing is not None else {}
        extracted = extractor_for(spec.format).extract(spec.content)
        chunks = chunker.chunk(extracted)
        return _Prepared(
            spec, key, digest, extracted.text, spec.title or extracted.title, chunks,
            existing.id if existing is not None else None, reusable, {}, set(),
        )  # fmt: skip

    async def _embed(self, items: Collection[_Prepared]) -> None:
        """Vectors for every chunk text not already embedded (reused ones are not recomputed)."""
        wanted: dict[str, str] = {}
        for item in items:
            for chunk in item.chunks:
                digest = _text_hash(chunk.text)
                if digest in item.reusable:
                    item.vectors[digest] = item.reusable[digest]
                elif digest not in wanted:
                    wanted[digest] = chunk.text
        digests = list(wanted)
        computed: dict[str, bytes] = {}
        batch = self.settings.embed_batch
        for start in range(0, len(digests), batch):
            part = digests[start : start + batch]
            vectors = await self.embed([wanted[d] for d in part])
            for digest, vector in zip(part, vectors, strict=True):
                computed[digest] = to_bytes(vector)
        for item in items:
            for chunk in item.chunks:
                digest = _text_hash(chunk.text)
                if digest in computed and digest not in item.vectors:
                    item.vectors[digest] = computed[digest]
                    item.fresh.add(digest)

    async def _write(self, col: CollectionView, item: _Prepared) -> IngestResult:
        embedded = len(item.fresh)
        async with self.db.transaction() as session:
            document = None
            if item.existing_id is not None:
                document = await session.get(KnowledgeDocument, item.existing_id, with_for_update=True)
            if document is None:
                document = KnowledgeDocument(
                    collection_id=col.id, tenant_id=col.tenant_id, external_id=item.key, version=1
                )
                status = "created"
                session.add(document)
            else:
                status = "updated"
                await store.drop_chunks(session, document.id)
                document.version += 1
            document.uri = item.spec.uri
            document.title = item.title
            document.format = item.spec.format
            document.content_hash = item.hash
            document.document_metadata = dict(item.spec.metadata)
            document.text = item.text
            document.chunk_count = len(item.chunks)
            document.updated_at = utcnow()
            await session.flush()
            await store.write_chunks(
                session,
                [
                    {
                        "collection_id": col.id,
                        "document_id": document.id,
                        "ordinal": chunk.ordinal,
                        "start": chunk.start,
                        "end": chunk.end,
                        "page": chunk.page,
                        "text": chunk.text,
                        "text_hash": (digest := _text_hash(chunk.text)),
                        "tokens": chunk.tokens,
                        "term_count": 0,
                        "embedding": item.vectors[digest],
                    }
                    for chunk in item.chunks
                ],
            )
            vectors = {chunk.ordinal: item.vectors[_text_hash(chunk.text)] for chunk in item.chunks}
            await self.dense.write_vectors(session, document.id, vectors)
            await store.bump_version(session, col.id)
        return IngestResult(item.key, status, document.id, document.version, len(item.chunks), embedded)

    async def list_documents(
        self, tenant_id: str, collection: str, *, limit: int = 100, after: str | None = None
    ) -> list[DocumentView]:
        async with self.db.session() as session:
            col = await self._collection(session, tenant_id, collection)
            statement = select(KnowledgeDocument).where(KnowledgeDocument.collection_id == col.id)
            if after is not None:
                statement = statement.where(KnowledgeDocument.external_id > after)
            rows = (await session.execute(statement.order_by(KnowledgeDocument.external_id).limit(limit))).scalars()
            return [store.document_view(row) for row in rows]

    async def get_document(self, tenant_id: str, collection: str, key: str) -> DocumentView:
        async with self.db.session() as session:
            col = await self._collection(session, tenant_id, collection)
            row = await store.find_document(session, col.id, key)
            if row is None:
                raise NotFound(f"no document {key!r} in {collection!r}")
            return store.document_view(row)

    async def delete_document(self, tenant_id: str, collection: str, key: str) -> None:
        async with self.db.transaction() as session:
            col = await self._collection(session, tenant_id, collection)
            row = await store.find_document(session, col.id, key)
            if row is None:
                raise NotFound(f"no document {key!r} in {collection!r}")
            await store.delete_documents(session, col.id, None, row.id)

    async def delete_documents(self, tenant_id: str, collection: str, filters: dict[str, Any]) -> int:
        """Delete every document whose metadata matches ``filters`` (required: never "all")."""
        condition = metadata_condition(filters)
        if condition is None:
            raise InvalidRequest("deleting by filter needs a non-empty filter")
        async with self.db.transaction() as session:
            col = await self._collection(session, tenant_id, collection)
            return await store.delete_documents(session, col.id, condition)

    async def index_counts(self, tenant_id: str, collection: str) -> dict[str, int]:
        """Chunk rows, keyword-index rows (chunks present in it) and vectors: always equal."""
        async with self.db.session() as session:
            col = await self._collection(session, tenant_id, collection)
            chunks = await session.scalar(
                select(func.count()).select_from(KnowledgeChunk).where(KnowledgeChunk.collection_id == col.id)
            )
            vectors = await session.scalar(
                select(func.count())
                .select_from(KnowledgeChunk)
                .where(KnowledgeChunk.collection_id == col.id, func.length(KnowledgeChunk.embedding) > 0)
            )
            keyword = await store.keyword_rows(session, col.id)
        return {"chunks": int(chunks or 0), "keyword": keyword, "vectors": int(vectors or 0)}

    # -- retrieval --------------------------------------------------------------------------------

    async def search(self, tenant_id: str, request: SearchRequest) -> list[Hit]:
        """Retrieve from the tenant's collections (bastion/knowledge/search.py)."""
        return await run_search(self.db, self.keyword, self.dense, self.embed_query, tenant_id, request)

    async def embed_query(self, query: str) -> Vector:
        vectors = await self.embed([query])
        return np.asarray(vectors[0], dtype=np.float32)
