"""knowledge: collections, documents, chunks (text, offsets, vectors) and the keyword index

The keyword index is kept by triggers, so it always agrees with the chunk rows: on SQLite an FTS5
table (porter stemming, BM25 via ``bm25()``); on PostgreSQL a postings table of English-stemmed
terms (``to_tsvector('english', ...)``) over which the service computes BM25 itself.

Revision ID: 0008_knowledge
Revises: 0007_batches
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_knowledge"
down_revision = "0007_batches"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_CHUNK_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_SQLITE = [
    # ``collection`` is indexed too: a search matches ``collection : "<id>" AND {text} : (...)``
    # inside FTS5, which is much faster than joining every match to its chunk row.
    "CREATE VIRTUAL TABLE knowledge_fts USING fts5(text, collection, "
    "tokenize = 'porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts (rowid, text, collection) VALUES (new.id, new.text, new.collection_id); END",
    "CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
    "DELETE FROM knowledge_fts WHERE rowid = old.id; END",
]

_POSTGRES = [
    """CREATE FUNCTION knowledge_chunk_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.term_count := (SELECT coalesce(sum(coalesce(array_length(t.positions, 1), 1)), 0)
                     FROM unnest(to_tsvector('english', NEW.text)) AS t);
  RETURN NEW;
END $$""",
    """CREATE FUNCTION knowledge_chunk_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO knowledge_postings (collection_id, term, chunk_id, tf, length)
  SELECT NEW.collection_id, t.lexeme, NEW.id, coalesce(array_length(t.positions, 1), 1), NEW.term_count
  FROM unnest(to_tsvector('english', NEW.text)) AS t;
  RETURN NULL;
END $$""",
    "CREATE TRIGGER knowledge_chunks_terms BEFORE INSERT ON knowledge_chunks "
    "FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_terms()",
    "CREATE TRIGGER knowledge_chunks_postings AFTER INSERT ON knowledge_chunks "
    "FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_postings()",
]


def upgrade() -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "knowledge_collections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=256), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("index_version", sa.Integer(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_knowledge_collections_tenant_name"),
    )
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["knowledge_collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_id", "external_id", name="uq_knowledge_documents_external"),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", _CHUNK_ID, autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("term_count", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["knowledge_documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_knowledge_chunks_collection", "knowledge_chunks", ["collection_id", "id"])
    op.create_index("ix_knowledge_chunks_document", "knowledge_chunks", ["document_id", "ordinal"])
    op.create_table(
        "knowledge_postings",
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("chunk_id", _CHUNK_ID, nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["knowledge_chunks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("collection_id", "term", "chunk_id"),
    )
    op.create_index("ix_knowledge_postings_chunk", "knowledge_postings", ["chunk_id"])
    statements = _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRES
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_insert")
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    else:
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_postings ON knowledge_chunks")
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_terms ON knowledge_chunks")
        op.execute("DROP FUNCTION IF EXISTS knowledge_chunk_postings()")
        op.execute("DROP FUNCTION IF EXISTS knowledge_chunk_terms()")
    op.drop_index("ix_knowledge_postings_chunk", table_name="knowledge_postings")
    op.drop_table("knowledge_postings")
    op.drop_index("ix_knowledge_chunks_document", table_name="knowledge_chunks")
    op.drop_index("ix_knowledge_chunks_collection", table_name="knowledge_chunks")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_documents")
    op.drop_table("knowledge_collections")
