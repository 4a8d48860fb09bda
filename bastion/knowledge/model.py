"""Plain values the knowledge service takes and returns (no database rows, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["bm25", "dense", "hybrid"]
Fusion = Literal["rrf", "linear"]


@dataclass(frozen=True, slots=True)
class CollectionView:
    id: str
    tenant_id: str
    name: str
    description: str | None
    chunk_size: int
    chunk_overlap: int
    embedding_model: str
    dimensions: int
    index_version: int
    metadata: dict[str, Any]
    documents: int = 0
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """One document to ingest: ``id`` or ``uri`` identifies it within its collection."""

    content: bytes | str
    id: str | None = None
    uri: str | None = None
    format: str = "text"
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        return self.id or self.uri


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: str
    collection_id: str
    external_id: str
    uri: str | None
    title: str | None
    format: str
    content_hash: str
    version: int
    metadata: dict[str, Any]
    chunks: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    """``created``, ``updated`` (a new version replaced the old one), ``metadata`` (same content,
    new metadata: nothing re-embedded), ``unchanged`` or ``error``."""

    key: str
    status: str
    document_id: str | None = None
    version: int | None = None
    chunks: int = 0
    #: Chunks whose vectors were computed now (a changed document reuses unchanged chunks' vectors).
    embedded: int = 0
    error: str | None = None
    #: The refused document's error code (``invalid_request``, ``request_too_large``,
    #: ``unsupported_format``, ``encrypted_pdf``, ``invalid_pdf``).
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: str
    collections: list[str]
    k: int = 10
    mode: Mode = "hybrid"
    #: Metadata filter, applied before ranking: ``{"field": value}`` or ``{"field": {"$in": [...]}}``.
    filters: dict[str, Any] | None = None
    #: Candidates each retriever contributes to fusion and MMR.
    fetch_k: int = 50
    fusion: Fusion = "rrf"
    rrf_k: int = 60
    #: Weights of (bm25, dense) in either fusion.
    weights: tuple[float, float] = (1.0, 1.0)
    #: None: no MMR re-ranking; else its lambda (1: relevance only, 0: diversity only).
    mmr_lambda: float | None = None
    #: Least dense cosine similarity (-1..1) a hit must have; None: no threshold.
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class RetrieverScore:
    score: float
    rank: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk and where it came from."""

    chunk_id: int
    collection_id: str
    collection: str
    document_id: str
    document_key: str
    uri: str | None
    title: str | None
    start: int
    end: int
    page: int | None
    text: str
    content_hash: str
    document_version: int
    index_version: int
    #: The final score the hits are ordered by (fusion's, or the single retriever's).
    score: float
    rank: int
    #: Each retriever's own score and rank ("bm25", "dense"), where it ranked the chunk.
    retrievers: dict[str, RetrieverScore]
    #: Cosine similarity to the query (what ``threshold`` compares); None in bm25 mode.
    cosine: float | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "collection": self.collection,
            "document_id": self.document_id,
            "document": self.document_key,
            "uri": self.uri,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "page": self.page,
            "content_hash": self.content_hash,
            "document_version": self.document_version,
            "index_version": self.index_version,
            "scores": {name: {"score": s.score, "rank": s.rank} for name, s in self.retrievers.items()},
            "cosine": self.cosine,
        }
