"""BM25 keyword retrieval, in the database, on either backend.

- SQLite: an FTS5 table per collection, ``knowledge_fts_<collection id>`` (porter stemmer), made
  with the collection and dropped with it, ranks with its built-in ``bm25()`` (k1 = 1.2, b = 0.75).
  FTS5 takes IDF and the mean length over its whole table, so one table per collection keeps the
  scores of a collection independent of every other collection (of every other tenant). Triggers
  on ``knowledge_chunks`` (one pair per collection, ``WHEN`` its id) keep the table in step.
- PostgreSQL: ``ts_rank`` has no IDF (about 0.46 nDCG@10 on SciFact against 0.68 for BM25), so the
  score is computed here over ``knowledge_postings`` (English-stemmed terms and their counts per
  chunk, kept by a trigger): IDF ``ln(1 + (N - df + 0.5) / (df + 0.5))`` (Lucene's) over the
  collection's chunks, ``tf (k1 + 1) / (tf + k1 (1 - b + b len / avglen))``.

The metadata filter joins the documents inside the same query, so it applies before the top-k.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, and_, cast, column, func, literal_column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.knowledge.models import KnowledgeChunk, KnowledgeCollection, KnowledgeDocument, KnowledgePosting

_WORD = re.compile(r"\w+", re.UNICODE)

#: English function words left out of SQLite queries (PostgreSQL's 'english' configuration drops
#: its own list): they match nearly every chunk and only add noise and time.
_STOPWORDS = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS.split())

_SAFE_ID = re.compile(r"[0-9A-Za-z]{1,64}")
_FTS_PREFIX = "knowledge_fts_"


def fts_table(collection_id: str) -> str:
    """The name of a collection's FTS5 table (ids are generated hex; anything else is refused, as
    the name is written into DDL)."""
    if not _SAFE_ID.fullmatch(collection_id):
        raise ValueError(f"not a collection id: {collection_id!r}")
    return _FTS_PREFIX + collection_id


def sqlite_index_ddl(collection_id: str) -> list[str]:
    """SQLite statements that create a new collection's FTS5 table and its triggers."""
    name = fts_table(collection_id)
    return [
        f"CREATE VIRTUAL TABLE {name} USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON knowledge_chunks WHEN new.collection_id = '{collection_id}' "
        f"BEGIN INSERT INTO {name} (rowid, text) VALUES (new.id, new.text); END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON knowledge_chunks WHEN old.collection_id = '{collection_id}' "
        f"BEGIN DELETE FROM {name} WHERE rowid = old.id; END",
    ]


def sqlite_drop_ddl(collection_id: str) -> list[str]:
    name = fts_table(collection_id)
    return [
        f"DROP TRIGGER IF EXISTS {name}_insert",
        f"DROP TRIGGER IF EXISTS {name}_delete",
        f"DROP TABLE IF EXISTS {name}",
    ]


async def create_keyword_index(session: AsyncSession, collection_id: str) -> None:
    """Make a new collection's keyword index, in the caller's transaction (PostgreSQL's postings
    table serves every collection: nothing to do there). Also drops the FTS tables of collections
    that went without ``drop_keyword_index`` (with their tenant, by cascade)."""
    if _dialect(session) != "sqlite":
        return
    names = (
        await session.execute(
            # The FTS5 tables themselves, not their shadow tables (``<name>_data`` and the like).
            text(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND name GLOB :pattern AND sql LIKE 'CREATE VIRTUAL%'"
            ),
            {"pattern": _FTS_PREFIX + "*"},
        )
    ).scalars()
    ids = {name[len(_FTS_PREFIX) :] for name in names if _SAFE_ID.fullmatch(name[len(_FTS_PREFIX) :])}
    if ids:
        alive = set(
            (await session.execute(select(KnowledgeCollection.id).where(KnowledgeCollection.id.in_(ids)))).scalars()
        )
        for orphan in sorted(ids - alive - {collection_id}):
            for statement in sqlite_drop_ddl(orphan):
                await session.execute(text(statement))
    for statement in sqlite_index_ddl(collection_id):
        await session.execute(text(statement))


async def drop_keyword_index(session: AsyncSession, collection_id: str) -> None:
    """Drop a collection's keyword index, in the caller's transaction (SQLite; see above)."""
    if _dialect(session) == "sqlite":
        for statement in sqlite_drop_ddl(collection_id):
            await session.execute(text(statement))


def fts_query(text: str) -> str | None:
    """The FTS5 MATCH expression for free text: each distinct word quoted (no operators reach FTS5),
    joined with OR; None when nothing searchable is left."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and word not in words:
            words.append(word)
    if not words:
        return None
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


class KeywordIndex:
    """BM25 over one collection's chunks; ``k1``/``b`` apply on PostgreSQL (FTS5 fixes its own)."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        #: (collection id, index version) -> (chunk count, mean chunk length in terms).
        self._stats: dict[str, tuple[int, tuple[int, float]]] = {}

    async def search(
        self,
        session: AsyncSession,
        collection_id: str,
        version: int,
        query: str,
        k: int,
        condition: ColumnElement[bool] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first, higher is better."""
        if k <= 0:
            return []
        if _dialect(session) == "sqlite":
            return await self._sqlite(session, collection_id, query, k, condition)
        return await self._postgres(session, collection_id, version, query, k, condition)

    async def _sqlite(
        self, session: AsyncSession, collection_id: str, query: str, k: int, condition: ColumnElement[bool] | None
    ) -> list[tuple[int, float]]:
        match = fts_query(query)
        if match is None:
            return []
        name = fts_table(collection_id)
        fts = table(name, column("rowid", Integer))
        score: Any = literal_column(f"bm25({name})")
        statement: Any = select(fts.c.rowid, score.label("score")).where(literal_column(name).op("MATCH")(match))
        if condition is not None:
            statement = (
                statement.join(KnowledgeChunk, KnowledgeChunk.id == fts.c.rowid)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(condition)
            )
        rows = (await session.execute(statement.order_by(score, fts.c.rowid).limit(k))).all()
        return [(int(row[0]), -float(row[1])) for row in rows]  # FTS5: lower is better

    async def _collection_stats(self, session: AsyncSession, collection_id: str, version: int) -> tuple[int, float]:
        cached = self._stats.get(collection_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        row = (
            await session.execute(
                select(func.count(), func.avg(KnowledgeChunk.term_count)).where(
                    KnowledgeChunk.collection_id == collection_id
                )
            )
        ).one()
        stats = (int(row[0]), float(row[1] or 1.0) or 1.0)
        self._stats[collection_id] = (version, stats)
        return stats

    async def _postgres(
        self,
        session: AsyncSession,
        collection_id: str,
        version: int,
        query: str,
        k: int,
        condition: ColumnElement[bool] | None,
    ) -> list[tuple[int, float]]:
        count, avglen = await self._collection_stats(session, collection_id, version)
        if count == 0:
            return []
        lexemes = func.unnest(func.to_tsvector(literal_column("'english'::regconfig"), query)).table_valued(
            "lexeme", "positions", "weights"
        )
        terms = select(lexemes.c.lexeme.label("term")).distinct().cte("terms")
        posting = KnowledgePosting
        # One pass over the query terms' postings (index-only: the primary key carries tf and
        # length), each term's document frequency counted over the same rows by a window. The
        # filter joins afterwards, so IDF stays the collection's whatever the filter.
        hits = (
            select(
                posting.chunk_id,
                cast(posting.tf, Float).label("tf"),
                cast(posting.length, Float).label("length"),
                cast(func.count().over(partition_by=posting.term), Float).label("df"),
            )
            .select_from(terms)
            .join(posting, and_(posting.collection_id == collection_id, posting.term == terms.c.term))
            .cte("hits")
        )
        idf = func.ln(1.0 + (float(count) - hits.c.df + 0.5) / (hits.c.df + 0.5))
        norm = self.k1 * (1.0 - self.b + self.b * hits.c.length / avglen)
        score: Any = func.sum(idf * hits.c.tf * (self.k1 + 1.0) / (hits.c.tf + norm)).label("score")
        statement: Any = select(hits.c.chunk_id, score)
        if condition is not None:
            statement = (
                statement.join(KnowledgeChunk, KnowledgeChunk.id == hits.c.chunk_id)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(condition)
            )
        statement = statement.group_by(hits.c.chunk_id).order_by(score.desc(), hits.c.chunk_id).limit(k)
        rows = (await session.execute(statement)).all()
        return [(int(row[0]), float(row[1])) for row in rows]


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


def ranks(hits: Sequence[tuple[int, float]]) -> dict[int, tuple[float, int]]:
    """chunk id -> (score, 1-based rank) of one retriever's list."""
    return {chunk_id: (score, rank) for rank, (chunk_id, score) in enumerate(hits, start=1)}
