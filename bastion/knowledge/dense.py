"""Dense search: exact in process, or pgvector's HNSW on a PostgreSQL that has the extension.

The vectors live in the chunk rows; a search compares the collection's ``index_version`` (bumped
in every writing transaction) with the cached matrix's and reloads on a difference, so every
process sees a change at its next search. Exact search is one matrix-vector product (5k-50k
chunks: a few milliseconds).

pgvector: migration ``0012_knowledge_backends`` enables the ``vector`` extension when PostgreSQL
offers it and adds ``knowledge_chunks.embedding_vector``; ``vector_backend`` detects that (once per
process) and then chunks are written with it too, each collection gets a partial HNSW index
(cosine) of its own, and an unfiltered dense search asks the index. A filtered one stays exact, so
top-k still returns k whenever k chunks match. Without the extension everything is exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.knowledge.models import KnowledgeChunk, KnowledgeDocument

Vector = npt.NDArray[np.float32]
VectorBackend = Literal["exact", "pgvector"]

_HAS_PGVECTOR = text(
    "SELECT 1 FROM pg_extension e JOIN information_schema.columns c ON c.table_name = 'knowledge_chunks'"
    " AND c.column_name = 'embedding_vector' AND c.table_schema = current_schema() WHERE e.extname = 'vector'"
)


async def vector_backend(session: AsyncSession) -> VectorBackend:
    """ "pgvector" when the database has the extension and the vector column, else "exact"."""
    if session.get_bind().dialect.name != "postgresql":
        return "exact"
    return "pgvector" if (await session.execute(_HAS_PGVECTOR)).first() is not None else "exact"


def vector_literal(vector: bytes | Vector) -> str:
    """pgvector's text form of a float32 vector (or of its little-endian bytes)."""
    values = np.frombuffer(vector, dtype="<f4") if isinstance(vector, bytes) else np.asarray(vector, dtype=np.float32)
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _hnsw_index(collection_id: str) -> str:
    if not collection_id.isalnum():
        raise ValueError(f"not a collection id: {collection_id!r}")
    return f"ix_knowledge_chunks_hnsw_{collection_id}"


def to_bytes(vector: list[float] | Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True, slots=True)
class Matrix:
    version: int
    #: Chunk ids, ascending; row i of ``vectors`` is chunk ``ids[i]``.
    ids: npt.NDArray[np.int64]
    vectors: Vector

    def rows(self, chunk_ids: list[int]) -> npt.NDArray[np.int64]:
        """Row index of each chunk id (-1: not in this matrix)."""
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        if not len(self.ids) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        position = np.searchsorted(self.ids, wanted)
        position = np.minimum(position, len(self.ids) - 1)
        return np.where(self.ids[position] == wanted, position, -1)

    def cosines(self, query: Vector, chunk_ids: list[int]) -> dict[int, float]:
        rows = self.rows(chunk_ids)
        known = rows >= 0
        scores = self.vectors[rows[known]] @ query
        return {cid: float(s) for cid, s in zip(np.asarray(chunk_ids)[known].tolist(), scores.tolist(), strict=True)}


class DenseIndex:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._matrices: dict[str, Matrix] = {}
        self._lock = threading.Lock()
        self._backend: VectorBackend | None = None

    async def backend(self, session: AsyncSession) -> VectorBackend:
        """The vector backend of this database, detected at the first call."""
        if self._backend is None:
            self._backend = await vector_backend(session)
        return self._backend

    async def create_index(self, session: AsyncSession, collection_id: str, dimensions: int) -> None:
        """A new collection's HNSW index (pgvector only), in the caller's transaction."""
        if await self.backend(session) == "pgvector":
            await session.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {_hnsw_index(collection_id)} ON knowledge_chunks USING hnsw "
                    f"((embedding_vector::vector({int(dimensions)})) vector_cosine_ops) "
                    f"WHERE collection_id = '{collection_id}'"
                )
            )

    async def drop_index(self, session: AsyncSession, collection_id: str) -> None:
        if await self.backend(session) == "pgvector":
            await session.execute(text(f"DROP INDEX IF EXISTS {_hnsw_index(collection_id)}"))

    async def write_vectors(self, session: AsyncSession, document_id: str, vectors: dict[int, bytes]) -> None:
        """Copy a document's new chunk vectors (ordinal -> bytes) into the pgvector column."""
        if vectors and await self.backend(session) == "pgvector":
            await session.execute(
                text(
                    "UPDATE knowledge_chunks SET embedding_vector = CAST(:v AS vector)"
                    " WHERE document_id = :d AND ordinal = :o"
                ),
                [{"v": vector_literal(blob), "d": document_id, "o": ordinal} for ordinal, blob in vectors.items()],
            )

    async def _hnsw(
        self, session: AsyncSession, collection_id: str, dimensions: int, query: Vector, k: int
    ) -> list[tuple[int, float]]:
        _hnsw_index(collection_id)  # validates the id written into the statement
        # ef_search at least k, or the index returns fewer than k.
        await session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(40, k))})
        distance = f"embedding_vector::vector({int(dimensions)}) <=> CAST(:q AS vector({int(dimensions)}))"
        rows = await session.execute(
            text(
                f"SELECT id, 1 - ({distance}) FROM knowledge_chunks WHERE collection_id = '{collection_id}'"
                f" AND embedding_vector IS NOT NULL ORDER BY {distance}, id LIMIT :k"
            ),
            {"q": vector_literal(query), "k": k},
        )
        return [(int(row[0]), float(row[1])) for row in rows]

    def invalidate(self, collection_id: str) -> None:
        with self._lock:
            self._matrices.pop(collection_id, None)

    async def matrix(self, session: AsyncSession, collection_id: str, version: int) -> Matrix:
        with self._lock:
            cached = self._matrices.get(collection_id)
        if cached is not None and cached.version == version:
            return cached
        rows = (
            await session.execute(
                select(KnowledgeChunk.id, KnowledgeChunk.embedding)
                .where(KnowledgeChunk.collection_id == collection_id)
                .order_by(KnowledgeChunk.id)
            )
        ).all()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        if rows:
            blob = b"".join(row[1] for row in rows)
            vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1).astype(np.float32, copy=False)
        else:
            vectors = np.zeros((0, self.dimensions), dtype=np.float32)
        matrix = Matrix(version, ids, vectors)
        with self._lock:
            self._matrices[collection_id] = matrix
        return matrix

    async def search(
        self,
        session: AsyncSession,
        matrix: Matrix,
        collection_id: str,
        query: Vector,
        k: int,
        condition: ColumnElement[bool] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) best first, over the chunks ``condition`` allows."""
        if k <= 0 or not len(matrix.ids):
            return []
        if condition is None and await self.backend(session) == "pgvector":
            return await self._hnsw(session, collection_id, matrix.vectors.shape[1], query, k)
        scores = matrix.vectors @ query
        if condition is not None:
            allowed = (
                await session.execute(
                    select(KnowledgeChunk.id)
                    .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                    .where(KnowledgeChunk.collection_id == collection_id)
                    .where(condition)
                )
            ).scalars()
            rows = matrix.rows(list(allowed))
            mask = np.full(len(scores), -np.inf, dtype=np.float32)
            mask[rows[rows >= 0]] = 0.0
            scores = scores + mask
        n = int(np.count_nonzero(np.isfinite(scores)))
        k = min(k, n)
        if k == 0:
            return []
        if k < len(scores):
            # Every chunk scoring at least the k-th best, so ties at the cut are all considered.
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            top = np.flatnonzero(scores >= kth)
        else:
            top = np.arange(len(scores))
        # Best first; equal scores in chunk id order, so a ranking is repeatable.
        top = top[np.lexsort((matrix.ids[top], -scores[top]))][:k]
        return [(int(matrix.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
