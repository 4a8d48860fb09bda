"""The knowledge tables: collections, documents, chunks, and PostgreSQL's keyword postings.

A chunk row carries its text, its exact character span in the document's extracted text, its
page and its embedding (float32 bytes), so the chunk, its vector and its keyword entry are written
by one INSERT and removed by one DELETE. The keyword index follows the chunk rows through database
triggers (migrations ``0008_knowledge`` and ``0012_knowledge_backends``): SQLite keeps an FTS5 table
per collection (``knowledge_fts_<collection id>``, rowid = chunk id; see ``keyword``), PostgreSQL a
postings table (one row per chunk and stemmed term) that BM25 is computed over. No code path can
therefore leave the three out of step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.store.models import Base, JSONType, new_id, utcnow

#: SQLite makes only an ``INTEGER PRIMARY KEY`` an auto-incrementing rowid (the FTS5 rowid too).
_ChunkId = BigInteger().with_variant(Integer(), "sqlite")


class KnowledgeCollection(Base):
    __tablename__ = "knowledge_collections"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_knowledge_collections_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Chunking of this collection, fixed at creation (changing it would need a re-index).
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    embedding_model: Mapped[str] = mapped_column(String(256))
    dimensions: Mapped[int] = mapped_column(Integer)
    #: Bumped in the transaction of every change; caches of the collection compare it.
    index_version: Mapped[int] = mapped_column(Integer, default=0)
    collection_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeDocument(Base):
    __tablename__ = "knowledge_documents"
    __table_args__ = (UniqueConstraint("collection_id", "external_id", name="uq_knowledge_documents_external"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(ForeignKey("knowledge_collections.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(32))
    #: What identifies the document to its owner: the id given at ingestion, else its uri.
    external_id: Mapped[str] = mapped_column(String(512))
    uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    format: Mapped[str] = mapped_column(String(32))
    #: sha256 of the source bytes and the chunking parameters: equal means nothing to do.
    content_hash: Mapped[str] = mapped_column(String(64))
    #: 1 at first ingestion, +1 at every replacement.
    version: Mapped[int] = mapped_column(Integer, default=1)
    document_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    #: The extracted text the chunk offsets point into.
    text: Mapped[str] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeChunk(Base):
    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        Index("ix_knowledge_chunks_collection", "collection_id", "id"),
        Index("ix_knowledge_chunks_document", "document_id", "ordinal"),
    )

    id: Mapped[int] = mapped_column(_ChunkId, primary_key=True, autoincrement=True)
    collection_id: Mapped[str] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    #: sha256 of the text: an unchanged chunk of a changed document keeps its vector.
    text_hash: Mapped[str] = mapped_column(String(64))
    tokens: Mapped[int] = mapped_column(Integer)
    #: Stemmed terms in the chunk (PostgreSQL's BM25 length; set by a trigger there, 0 on SQLite).
    term_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Unit-length float32 vector, little-endian bytes.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class KnowledgePosting(Base):
    """PostgreSQL's keyword index: written by the chunk insert trigger, removed by cascade. Its
    primary key also carries ``tf`` and ``length`` (``INCLUDE``, migration 0010), so BM25 scans
    the index alone."""

    __tablename__ = "knowledge_postings"
    __table_args__ = (Index("ix_knowledge_postings_chunk", "chunk_id"),)

    collection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    term: Mapped[str] = mapped_column(Text, primary_key=True)
    chunk_id: Mapped[int] = mapped_column(
        _ChunkId, ForeignKey("knowledge_chunks.id", ondelete="CASCADE"), primary_key=True
    )
    tf: Mapped[int] = mapped_column(Integer)
    #: The chunk's ``term_count`` (BM25's length), copied so scoring needs no join to the chunks.
    length: Mapped[int] = mapped_column(Integer)
