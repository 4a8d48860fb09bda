"""BM25 keyword retrieval, in the database, on either backend.

- SQLite: the FTS5 table ``knowledge_fts`` (porter stemmer) ranks with its built-in ``bm25()``
  (k1 = 1.2, b = 0.75, IDF over the FTS table); the collection is a term of its own column.
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

from sqlalchemy import ColumnElement, Float, Integer, cast, column, func, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.knowledge.models import KnowledgeChunk, KnowledgeDocument, KnowledgePosting

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

_FTS = table("knowledge_fts", column("rowid", Integer))


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
        # Weight 0 for the collection column: only the text counts in the score.
        score: Any = literal_column("bm25(knowledge_fts, 1.0, 0.0)")
        scoped = f'collection : "{collection_id}" AND {{text}} : ({match})'
        statement: Any = select(_FTS.c.rowid, score.label("score")).where(
            literal_column("knowledge_fts").op("MATCH")(scoped)
        )
        if condition is not None:
            statement = (
                statement.join(KnowledgeChunk, KnowledgeChunk.id == _FTS.c.rowid)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(condition)
            )
        rows = (await session.execute(statement.order_by(score, _FTS.c.rowid).limit(k))).all()
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
        df = (
            select(posting.term, cast(func.count(), Float).label("df"))
            .join(terms, terms.c.term == posting.term)
            .where(posting.collection_id == collection_id)
            .group_by(posting.term)
            .cte("df")
        )
        tf = cast(posting.tf, Float)
        length = cast(posting.length, Float)
        idf = func.ln(1.0 + (float(count) - df.c.df + 0.5) / (df.c.df + 0.5))
        norm = self.k1 * (1.0 - self.b + self.b * length / avglen)
        score: Any = func.sum(idf * tf * (self.k1 + 1.0) / (tf + norm)).label("score")
        statement: Any = (
            select(posting.chunk_id, score)
            .join(df, df.c.term == posting.term)
            .where(posting.collection_id == collection_id)
        )
        if condition is not None:
            statement = (
                statement.join(KnowledgeChunk, KnowledgeChunk.id == posting.chunk_id)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(condition)
            )
        statement = statement.group_by(posting.chunk_id).order_by(score.desc(), posting.chunk_id).limit(k)
        rows = (await session.execute(statement)).all()
        return [(int(row[0]), float(row[1])) for row in rows]


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


def ranks(hits: Sequence[tuple[int, float]]) -> dict[int, tuple[float, int]]:
    """chunk id -> (score, 1-based rank) of one retriever's list."""
    return {chunk_id: (score, rank) for rank, (chunk_id, score) in enumerate(hits, start=1)}
