"""knowledge backends: a keyword index per collection on SQLite, covering postings on PostgreSQL

- SQLite: FTS5 computes BM25's IDF and mean length over its whole table, so the single
  ``knowledge_fts`` let every collection (of every tenant) change every other's scores. Each
  collection gets a table of its own, ``knowledge_fts_<collection id>``, with a pair of triggers on
  ``knowledge_chunks`` restricted to its id (the service creates them with each new collection).
- PostgreSQL: the postings' primary key carries ``tf`` and ``length`` (``INCLUDE``), so BM25 reads
  the query terms' postings from the index alone.
- PostgreSQL with the ``vector`` extension available: it is enabled (when the role may) and
  chunks get an ``embedding_vector`` column for HNSW search; without it nothing changes and dense
  search stays exact. Never fails for the extension's absence.

Revision ID: 0012_knowledge_backends
Revises: 0011_insights
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
import struct

import sqlalchemy as sa
from alembic import op

revision = "0012_knowledge_backends"
down_revision = "0011_insights"
branch_labels = None
depends_on = None

_TOKENIZE = "tokenize = 'porter unicode61 remove_diacritics 2'"


def _sqlite_collection(collection_id: str) -> list[str]:
    if not re.fullmatch(r"[0-9A-Za-z]{1,64}", collection_id):
        raise ValueError(f"unexpected collection id {collection_id!r}")
    name = f"knowledge_fts_{collection_id}"
    where = f"collection_id = '{collection_id}'"
    return [
        f"CREATE VIRTUAL TABLE {name} USING fts5(text, {_TOKENIZE})",
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON knowledge_chunks WHEN new.{where} "
        f"BEGIN INSERT INTO {name} (rowid, text) VALUES (new.id, new.text); END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON knowledge_chunks WHEN old.{where} "
        f"BEGIN DELETE FROM {name} WHERE rowid = old.id; END",
        f"INSERT INTO {name} (rowid, text) SELECT id, text FROM knowledge_chunks WHERE {where}",
    ]


def _collections() -> list[str]:
    return [str(row[0]) for row in op.get_bind().execute(sa.text("SELECT id FROM knowledge_collections"))]


def _pgvector() -> None:
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if available is None:
        return
    # In a savepoint: a role without the privilege to create it leaves the migration unharmed.
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:
        return
    op.execute("ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS embedding_vector vector")
    # Existing chunks: their float32 bytes copied into the column, then an index per collection.
    rows = bind.execute(sa.text("SELECT id, embedding FROM knowledge_chunks WHERE embedding_vector IS NULL"))
    update = sa.text("UPDATE knowledge_chunks SET embedding_vector = CAST(:v AS vector) WHERE id = :id")
    for row in rows.fetchall():
        values = struct.unpack(f"<{len(row[1]) // 4}f", row[1])
        bind.execute(update, {"id": row[0], "v": "[" + ",".join(repr(v) for v in values) + "]"})
    for collection_id, dimensions in bind.execute(sa.text("SELECT id, dimensions FROM knowledge_collections")):
        if not re.fullmatch(r"[0-9A-Za-z]{1,64}", collection_id):
            continue
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_knowledge_chunks_hnsw_{collection_id} ON knowledge_chunks USING hnsw "
            f"((embedding_vector::vector({int(dimensions)})) vector_cosine_ops) WHERE collection_id = '{collection_id}'"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_insert")
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_delete")
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
        for collection_id in _collections():
            for statement in _sqlite_collection(collection_id):
                op.execute(statement)
        return
    op.execute("ALTER TABLE knowledge_postings DROP CONSTRAINT knowledge_postings_pkey")
    op.execute(
        "ALTER TABLE knowledge_postings ADD CONSTRAINT knowledge_postings_pkey "
        "PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, length)"
    )
    _pgvector()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for collection_id in _collections():
            name = f"knowledge_fts_{collection_id}"
            op.execute(f"DROP TRIGGER IF EXISTS {name}_insert")
            op.execute(f"DROP TRIGGER IF EXISTS {name}_delete")
            op.execute(f"DROP TABLE IF EXISTS {name}")
        op.execute(f"CREATE VIRTUAL TABLE knowledge_fts USING fts5(text, collection, {_TOKENIZE})")
        op.execute(
            "CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
            "INSERT INTO knowledge_fts (rowid, text, collection) VALUES (new.id, new.text, new.collection_id); END"
        )
        op.execute(
            "CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
            "DELETE FROM knowledge_fts WHERE rowid = old.id; END"
        )
        op.execute(
            "INSERT INTO knowledge_fts (rowid, text, collection) SELECT id, text, collection_id FROM knowledge_chunks"
        )
        return
    op.execute("ALTER TABLE knowledge_chunks DROP COLUMN IF EXISTS embedding_vector")
    op.execute("ALTER TABLE knowledge_postings DROP CONSTRAINT knowledge_postings_pkey")
    op.execute(
        "ALTER TABLE knowledge_postings ADD CONSTRAINT knowledge_postings_pkey"
        " PRIMARY KEY (collection_id, term, chunk_id)"
    )
