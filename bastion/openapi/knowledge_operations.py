"""The knowledge API in the OpenAPI document: ``/v1/knowledge/...`` (collections, documents,
ingestion jobs, search), its request bodies and answers (what ``bastion/knowledge/wire.py`` builds;
docs/KNOWLEDGE.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.openapi.components import pydantic_components
from bastion.openapi.operation import Operation, json, path, query

TAG = "Knowledge"
TAG_DESCRIPTION = "Collections, documents, ingestion and retrieval (docs/KNOWLEDGE.md)."


class KnowledgeCollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="Unique in the tenant; no '/'.")
    description: str | None = Field(None, max_length=4096)
    chunk_size: int | None = Field(None, description="Word pieces per chunk (16-254; default `knowledge.chunk_size`).")
    chunk_overlap: int | None = Field(None, description="Word pieces consecutive chunks share (less than chunk_size).")
    metadata: dict[str, Any] | None = None


class KnowledgeIndexCounts(BaseModel):
    chunks: int
    keyword: int
    vectors: int


class KnowledgeCollection(BaseModel):
    object: Literal["knowledge.collection"]
    id: str
    name: str
    description: str | None
    chunk_size: int
    chunk_overlap: int
    embedding_model: str
    dimensions: int
    index_version: int = Field(description="Bumped by every change to the collection's documents.")
    metadata: dict[str, Any]
    documents: int
    chunks: int
    index: KnowledgeIndexCounts | None = Field(
        None, description="One collection only: chunk rows, keyword-index rows and vectors (always equal)."
    )


class KnowledgeCollectionList(BaseModel):
    object: Literal["list"]
    data: list[KnowledgeCollection]
    first_id: str | None
    last_id: str | None
    has_more: bool


class KnowledgeCollectionDeleted(BaseModel):
    object: Literal["knowledge.collection.deleted"]
    id: str
    name: str
    deleted: bool


class KnowledgeDocumentInput(BaseModel):
    """One document: an id or a uri, and exactly one of text, content (the same) or content_base64."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=512, description="What identifies the document (default: its uri).")
    uri: str | None = Field(None, max_length=2048)
    title: str | None = None
    format: str | None = Field(
        None, description="text, markdown, html or pdf (default: the uri's extension, else text)."
    )
    metadata: dict[str, Any] | None = Field(None, description="Filterable in search and delete by filter.")
    text: str | None = None
    content: str | None = None
    content_base64: str | None = Field(None, description="The file's bytes (a PDF), base64.")


class KnowledgeDocumentBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[KnowledgeDocumentInput] = Field(min_length=1)
    background: bool = Field(False, description="Run as an ingestion job whatever the size.")


class KnowledgeIngestResult(BaseModel):
    key: str
    status: Literal["created", "updated", "metadata", "unchanged", "error"]
    document_id: str | None
    version: int | None
    chunks: int
    embedded: int = Field(description="Chunks whose vectors were computed now (0 for an unchanged document).")
    error: str | None
    error_code: str | None


class KnowledgeIngest(BaseModel):
    """Ingested while the request waited: each document's outcome, in order."""

    object: Literal["knowledge.ingest"]
    collection_id: str
    results: list[KnowledgeIngestResult]


class KnowledgeIngestQueued(BaseModel):
    object: Literal["knowledge.ingest_job"]
    id: str
    collection_id: str
    state: Literal["queued"]
    documents: int
    status_url: str


class KnowledgeJobProgress(BaseModel):
    done: int
    total: int | None


class KnowledgeJobDocument(BaseModel):
    item: str = Field(description="`<index>:<key>` of the document in the upload.")
    status: str
    result: dict[str, Any] | None = Field(description="Its ingestion result (as in KnowledgeIngestResult).")
    error: dict[str, Any] | None = Field(description="{document, message, code} when it was refused.")


class KnowledgeIngestJob(BaseModel):
    object: Literal["knowledge.ingest_job"]
    id: str
    kind: Literal["knowledge_ingest"]
    key_id: str | None
    user_id: str | None
    state: str
    attempts: int
    max_attempts: int
    cancel_requested: bool
    progress: KnowledgeJobProgress
    error: str | None
    result: dict[str, Any] | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    documents: list[KnowledgeJobDocument]


class KnowledgeDocument(BaseModel):
    object: Literal["knowledge.document"]
    id: str = Field(description="The key it was ingested under (its id, else its uri).")
    document_id: str
    collection_id: str
    uri: str | None
    title: str | None
    format: str
    content_hash: str
    version: int
    metadata: dict[str, Any]
    chunks: int


class KnowledgeDocumentList(BaseModel):
    object: Literal["list"]
    data: list[KnowledgeDocument]
    first_id: str | None
    last_id: str | None
    has_more: bool


class KnowledgeDocumentDeleted(BaseModel):
    object: Literal["knowledge.document.deleted"]
    id: str
    deleted: bool


class KnowledgeDeleteByFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] = Field(description='{"field": value} or {"field": {"$in"|"$ne"|"$eq": ...}}; not empty.')


class KnowledgeDocumentsDeleted(BaseModel):
    object: Literal["knowledge.documents.deleted"]
    deleted: int
    filter: dict[str, Any]


class KnowledgeMmr(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``lambda`` in JSON.
    lambda_: float | None = Field(None, alias="lambda", ge=0, le=1)
    fetch_k: int | None = Field(None, ge=1, le=1000)


class KnowledgeSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    collections: list[str] | None = Field(None, min_length=1, description="Names or ids (or `collection`: one).")
    collection: str | None = None
    k: int = Field(10, ge=1, le=1000)
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    filters: dict[str, Any] | None = Field(None, description="Metadata filter, applied before ranking.")
    fetch_k: int | None = Field(
        None, ge=1, le=1000, description="Candidates per retriever (default knowledge.fetch_k)."
    )
    fusion: Literal["rrf", "linear"] = "rrf"
    rrf_k: int | None = Field(None, ge=1)
    weights: list[float] | None = Field(None, min_length=2, max_length=2, description="[bm25, dense].")
    mmr_lambda: float | None = Field(None, ge=0, le=1, description="MMR re-ranking (1: relevance only).")
    mmr: KnowledgeMmr | None = None
    threshold: float | None = Field(None, description="Least dense cosine (-1..1) a hit must have.")


class KnowledgeRetrieverScore(BaseModel):
    score: float
    rank: int


class KnowledgeProvenance(BaseModel):
    collection_id: str
    collection: str
    document_id: str
    document: str
    uri: str | None
    chunk_id: int
    start: int = Field(description="Character offsets into the document's extracted text.")
    end: int
    page: int | None
    content_hash: str
    document_version: int
    index_version: int
    scores: dict[str, KnowledgeRetrieverScore] = Field(description="bm25 and/or dense: each one's score and rank.")
    cosine: float | None


class KnowledgeHit(BaseModel):
    rank: int
    score: float
    text: str
    title: str | None
    metadata: dict[str, Any]
    provenance: KnowledgeProvenance


class KnowledgeSearchResults(BaseModel):
    object: Literal["list"]
    query: str
    mode: Literal["bm25", "dense", "hybrid"]
    data: list[KnowledgeHit]


MODELS: list[type[BaseModel]] = [
    KnowledgeCollectionCreate, KnowledgeCollection, KnowledgeCollectionList, KnowledgeCollectionDeleted,
    KnowledgeDocumentInput, KnowledgeDocumentBatch, KnowledgeIngest, KnowledgeIngestQueued, KnowledgeIngestJob,
    KnowledgeDocument, KnowledgeDocumentList, KnowledgeDocumentDeleted, KnowledgeDeleteByFilter,
    KnowledgeDocumentsDeleted, KnowledgeSearchRequest, KnowledgeSearchResults,
]  # fmt: skip


def knowledge_components() -> dict[str, Any]:
    schemas = pydantic_components(MODELS)
    schemas["KnowledgeDocumentUpload"] = {
        "description": "One document, a list of documents, or {documents, background}.",
        "anyOf": [
            {"$ref": "#/components/schemas/KnowledgeDocumentInput"},
            {"type": "array", "items": {"$ref": "#/components/schemas/KnowledgeDocumentInput"}, "minItems": 1},
            {"$ref": "#/components/schemas/KnowledgeDocumentBatch"},
        ],
    }
    schemas["KnowledgeDocumentForm"] = {
        "type": "object",
        "description": "A multipart/form-data upload of one file (docs/KNOWLEDGE.md).",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "At most `knowledge.max_document_bytes`."},
            "id": {"type": "string", "description": "What identifies the document (default: uri, else file name)."},
            "uri": {"type": "string"},
            "title": {"type": "string"},
            "format": {"type": "string", "description": "text, markdown, html or pdf (default: from the file)."},
            "metadata": {"type": "string", "description": "A JSON object."},
            "background": {"enum": ["true", "false"]},
        },
        "required": ["file"],
    }
    return schemas


COLLECTION = path("collection", {"type": "string", "minLength": 1, "maxLength": 128}, "A collection's name or id.")
DOCUMENT = path("document", {"type": "string", "minLength": 1}, "A document's key (its id or uri) or document_id.")
JOB_ID = path("job_id", {"type": "string", "minLength": 1, "maxLength": 64})
_C = "/v1/knowledge/collections/{collection}"
_WRITE = "Needs `knowledge:write` (admin, developer). "
_READ = "Needs `models:call` (admin, developer, service). "
_SEARCH_EXAMPLE = {"query": "How are refunds handled?", "collections": ["handbook"], "k": 5, "mode": "bm25"}

KNOWLEDGE_OPERATIONS = [
    Operation(
        "post", "/v1/knowledge/collections", "createKnowledgeCollection", "Create a collection", TAG,
        {201: json("KnowledgeCollection")}, body="KnowledgeCollectionCreate", errors=(400, 409, 413),
        example={"name": "handbook", "description": "The staff handbook", "metadata": {"team": "support"}},
        description=_WRITE + "The chunking is fixed at creation. 409: the tenant has a collection of that name.",
    ),
    Operation(
        "get", "/v1/knowledge/collections", "listKnowledgeCollections", "The tenant's collections", TAG,
        {200: json("KnowledgeCollectionList")}, description=_READ + "By name, with document and chunk counts.",
    ),
    Operation(
        "get", _C, "getKnowledgeCollection", "One collection, with its index counts", TAG,
        {200: json("KnowledgeCollection")}, params=(COLLECTION,), errors=(404,), description=_READ,
    ),
    Operation(
        "delete", _C, "deleteKnowledgeCollection", "Delete a collection and its documents", TAG,
        {200: json("KnowledgeCollectionDeleted")}, params=(COLLECTION,), errors=(404,), description=_WRITE,
    ),
    Operation(
        "post", _C + "/documents", "ingestKnowledgeDocuments", "Ingest documents", TAG,
        {200: json("KnowledgeIngest"), 202: json("KnowledgeIngestQueued")}, params=(COLLECTION,),
        body="KnowledgeDocumentUpload", other_bodies=(("multipart/form-data", "KnowledgeDocumentForm"),),
        errors=(400, 404, 413, 415),
        example={"id": "refunds", "text": "Refunds are paid within 14 days.", "metadata": {"lang": "en"}},
        description=_WRITE + "JSON (one document, a list, or {documents, background}) or a multipart file "
        "upload. Small uploads (`knowledge.sync_ingest_bytes`, `knowledge.sync_ingest_documents`) are ingested "
        "while the request waits (200); others run as a job (202; `GET /v1/knowledge/jobs/{job_id}`). "
        "Re-ingesting an unchanged document computes nothing; a changed one replaces its previous version. "
        "413: a document over `knowledge.max_document_bytes`; 415: a format other than text, Markdown, HTML "
        "or PDF; 400: an encrypted or damaged PDF.",
    ),
    Operation(
        "get", _C + "/documents", "listKnowledgeDocuments", "A collection's documents", TAG,
        {200: json("KnowledgeDocumentList")},
        params=(
            COLLECTION,
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (default 100)."),
            query("after", {"type": "string"}, "The previous page's `last_id`."),
        ),
        errors=(400, 404), description=_READ + "Ordered by key.",
    ),
    Operation(
        "post", _C + "/documents/delete", "deleteKnowledgeDocumentsByFilter", "Delete documents by metadata", TAG,
        {200: json("KnowledgeDocumentsDeleted")}, params=(COLLECTION,), body="KnowledgeDeleteByFilter",
        errors=(400, 404, 413), example={"filter": {"lang": "en"}},
        description=_WRITE + "Every document whose metadata matches the (non-empty) filter; the count deleted.",
    ),
    Operation(
        "get", _C + "/documents/{document}", "getKnowledgeDocument", "One document", TAG,
        {200: json("KnowledgeDocument")}, params=(COLLECTION, DOCUMENT), errors=(404,), description=_READ,
    ),
    Operation(
        "delete", _C + "/documents/{document}", "deleteKnowledgeDocument", "Delete a document", TAG,
        {200: json("KnowledgeDocumentDeleted")}, params=(COLLECTION, DOCUMENT), errors=(404,), description=_WRITE,
    ),
    Operation(
        "get", "/v1/knowledge/jobs/{job_id}", "getKnowledgeIngestJob", "An ingestion job", TAG,
        {200: json("KnowledgeIngestJob")},
        params=(JOB_ID, query("after", {"type": "string"}, "The last `item` seen: the next 1,000 documents.")),
        errors=(404,), description=_WRITE + "State, progress and each finished document's outcome or error.",
    ),
    Operation(
        "post", "/v1/knowledge/jobs/{job_id}/cancel", "cancelKnowledgeIngestJob", "Cancel an ingestion job", TAG,
        {200: json("KnowledgeIngestJob")}, params=(JOB_ID,), errors=(404, 409),
        description=_WRITE + "It stops between groups of documents; the documents already ingested stay.",
    ),
    Operation(
        "post", "/v1/knowledge/search", "searchKnowledge", "Retrieve from collections", TAG,
        {200: json("KnowledgeSearchResults")}, body="KnowledgeSearchRequest", errors=(400, 404, 413),
        example=_SEARCH_EXAMPLE,
        description=_READ + "bm25, dense or hybrid (fused: rrf or linear), optional MMR, metadata filters before "
        "ranking, and a threshold on the dense cosine. Each hit carries its provenance.",
    ),
]  # fmt: skip
