"""One retrieval: retrievers per collection, fusion, the cosine threshold, MMR, provenance.

The order of work: the metadata filter goes into each retriever's own query (so it applies before
ranking); each retriever returns its best ``fetch_k`` chunks; the lists are fused (hybrid) or
taken as they are; the threshold drops candidates whose dense cosine with the query is below it;
MMR re-orders the survivors; the best ``k`` are hydrated with their provenance in one query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import load_only

from bastion.errors import InvalidRequest, NotFound
from bastion.knowledge.dense import DenseIndex, Matrix, Vector
from bastion.knowledge.filters import metadata_condition
from bastion.knowledge.fusion import linear, mmr, rrf
from bastion.knowledge.keyword import KeywordIndex, ranks
from bastion.knowledge.model import Hit, RetrieverScore, SearchRequest
from bastion.knowledge.models import KnowledgeChunk, KnowledgeCollection, KnowledgeDocument
from bastion.knowledge.store import find_collection
from bastion.store.db import Database

MAX_K = 1000


def _validate(request: SearchRequest) -> None:
    if not request.query.strip():
        raise InvalidRequest("the query is empty")
    if not request.collections:
        raise InvalidRequest("name at least one collection")
    if not 1 <= request.k <= MAX_K or not 1 <= request.fetch_k <= MAX_K:
        raise InvalidRequest(f"k and fetch_k are between 1 and {MAX_K}")
    if request.mode not in ("bm25", "dense", "hybrid"):
        raise InvalidRequest("mode is bm25, dense or hybrid")
    if request.fusion not in ("rrf", "linear"):
        raise InvalidRequest("fusion is rrf or linear")
    if request.mmr_lambda is not None and not 0.0 <= request.mmr_lambda <= 1.0:
        raise InvalidRequest("mmr_lambda is between 0 and 1")
    if len(request.weights) != 2 or min(request.weights) < 0:
        raise InvalidRequest("weights are two non-negative numbers (bm25, dense)")


def _merge(lists: list[list[tuple[int, float]]], limit: int) -> list[tuple[int, float]]:
    merged = [hit for part in lists for hit in part]
    merged.sort(key=lambda pair: (-pair[1], pair[0]))
    return merged[:limit]


def _vector_of(matrices: list[Matrix], chunk_id: int) -> Vector | None:
    for matrix in matrices:
        row = int(matrix.rows([chunk_id])[0])
        if row >= 0:
            vector: Vector = matrix.vectors[row]
            return vector
    return None


async def run_search(
    db: Database,
    keyword_index: KeywordIndex,
    dense_index: DenseIndex,
    embed_query: Callable[[str], Awaitable[Vector]],
    tenant_id: str,
    request: SearchRequest,
) -> list[Hit]:
    _validate(request)
    condition = metadata_condition(request.filters)
    mode = request.mode
    wants_cosine = mode != "bm25" or request.threshold is not None
    wants_matrix = wants_cosine or request.mmr_lambda is not None
    widen = mode == "hybrid" or request.mmr_lambda is not None or request.threshold is not None
    fetch = max(request.k, request.fetch_k) if widen else request.k
    query_vector = await embed_query(request.query) if wants_cosine else None
    async with db.session() as session:
        collections: dict[str, KnowledgeCollection] = {}
        for ref in request.collections:
            row = await find_collection(session, tenant_id, ref)
            if row is None:
                raise NotFound(f"no knowledge collection {ref!r}")
            collections[row.id] = row
        matrices: list[Matrix] = []
        keyword_lists: list[list[tuple[int, float]]] = []
        dense_lists: list[list[tuple[int, float]]] = []
        for col in collections.values():
            matrix = await dense_index.matrix(session, col.id, col.index_version) if wants_matrix else None
            if matrix is not None:
                matrices.append(matrix)
            if mode in ("bm25", "hybrid"):
                keyword_lists.append(
                    await keyword_index.search(session, col.id, col.index_version, request.query, fetch, condition)
                )
            if mode in ("dense", "hybrid") and matrix is not None and query_vector is not None:
                dense_lists.append(await dense_index.search(session, matrix, col.id, query_vector, fetch, condition))
        keyword = _merge(keyword_lists, fetch)
        dense = _merge(dense_lists, fetch)
        if mode == "bm25":
            fused = keyword
        elif mode == "dense":
            fused = dense
        elif request.fusion == "rrf":
            fused = rrf([keyword, dense], request.weights, request.rrf_k)
        else:
            fused = linear([keyword, dense], request.weights)
        cosines: dict[int, float] = {}
        if query_vector is not None:
            ids = [chunk_id for chunk_id, _score in fused]
            for matrix in matrices:
                cosines.update(matrix.cosines(query_vector, ids))
        if request.threshold is not None:
            fused = [(cid, score) for cid, score in fused if cosines.get(cid, -2.0) >= request.threshold]
        if request.mmr_lambda is not None:
            vectors = {cid: _vector_of(matrices, cid) for cid, _score in fused}

            def similarity(a: int, b: int) -> float:
                va, vb = vectors.get(a), vectors.get(b)
                return float(va @ vb) if va is not None and vb is not None else 0.0

            fused = mmr(fused, similarity, request.k, request.mmr_lambda)
        top = fused[: request.k]
        return await _hydrate(session, collections, top, ranks(keyword), ranks(dense), cosines)


async def _hydrate(
    session: Any,
    collections: dict[str, KnowledgeCollection],
    top: list[tuple[int, float]],
    keyword: dict[int, tuple[float, int]],
    dense: dict[int, tuple[float, int]],
    cosines: dict[int, float],
) -> list[Hit]:
    if not top:
        return []
    # The document's own columns but not its (long) text: a hit quotes its chunk.
    document = load_only(
        KnowledgeDocument.id,
        KnowledgeDocument.external_id,
        KnowledgeDocument.uri,
        KnowledgeDocument.title,
        KnowledgeDocument.content_hash,
        KnowledgeDocument.version,
        KnowledgeDocument.document_metadata,
    )
    chunk = load_only(
        KnowledgeChunk.id,
        KnowledgeChunk.collection_id,
        KnowledgeChunk.start,
        KnowledgeChunk.end,
        KnowledgeChunk.page,
        KnowledgeChunk.text,
    )
    rows = (
        await session.execute(
            select(KnowledgeChunk, KnowledgeDocument)
            .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
            .where(KnowledgeChunk.id.in_([cid for cid, _score in top]))
            .options(chunk, document)
        )
    ).all()
    found = {chunk.id: (chunk, document) for chunk, document in rows}
    hits: list[Hit] = []
    for chunk_id, score in top:
        if chunk_id not in found:
            continue  # replaced or deleted since it was ranked
        chunk, document = found[chunk_id]
        col = collections[chunk.collection_id]
        retrievers: dict[str, RetrieverScore] = {}
        if chunk_id in keyword:
            retrievers["bm25"] = RetrieverScore(*keyword[chunk_id])
        if chunk_id in dense:
            retrievers["dense"] = RetrieverScore(*dense[chunk_id])
        hits.append(
            Hit(
                chunk_id=chunk_id,
                collection_id=col.id,
                collection=col.name,
                document_id=document.id,
                document_key=document.external_id,
                uri=document.uri,
                title=document.title,
                start=chunk.start,
                end=chunk.end,
                page=chunk.page,
                text=chunk.text,
                content_hash=document.content_hash,
                document_version=document.version,
                index_version=col.index_version,
                score=score,
                rank=len(hits) + 1,
                retrievers=retrievers,
                cosine=cosines.get(chunk_id),
                metadata=dict(document.document_metadata or {}),
            )
        )
    return hits
