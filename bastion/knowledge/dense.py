"""Exact dense search in process: one float32 matrix per collection, rebuilt when it changes.

The vectors live in the chunk rows; a search compares the collection's ``index_version`` (bumped
in every writing transaction) with the cached matrix's and reloads on a difference, so every
process sees a change at its next search. Search is one matrix-vector product (5k-50k chunks:
a few milliseconds); pgvector's HNSW can take over for much larger collections.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.knowledge.models import KnowledgeChunk, KnowledgeDocument

Vector = npt.NDArray[np.float32]


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
