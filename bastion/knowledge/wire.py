"""The knowledge API's JSON: request bodies -> the service's values (clear 400s for bad input),
and the service's values -> the JSON the HTTP API and the CLI print (docs/KNOWLEDGE.md, "API").

Plain dicts in and out, no HTTP: ``bastion/api/knowledge.py`` reads the body and calls these.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass
from typing import Any, cast

from bastion.errors import InvalidRequest
from bastion.knowledge.extract import detect_format, format_name
from bastion.knowledge.model import (
    CollectionView,
    DocumentInput,
    DocumentView,
    Hit,
    IngestResult,
    Mode,
    SearchRequest,
)

MAX_KEY_CHARS = 512
MAX_URI_CHARS = 2048
_DOCUMENT_FIELDS = frozenset({"id", "uri", "title", "format", "metadata", "text", "content", "content_base64"})
_SEARCH_FIELDS = frozenset(
    {"query", "collections", "collection", "k", "mode", "filters", "fetch_k", "fusion", "rrf_k", "weights",
     "mmr_lambda", "mmr", "threshold"}
)  # fmt: skip
_COLLECTION_FIELDS = frozenset({"name", "description", "chunk_size", "chunk_overlap", "metadata"})


#: Integers the databases compare and store as numbers (64-bit).
_INT_LIMIT = 2**63


def check_values(value: Any, what: str) -> None:
    """400 for what no backend stores alike: NUL in a string (PostgreSQL refuses it in text and
    JSON) and integers beyond 64 bits; checked over the whole request before it reaches a query."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"{what} contains a NUL character")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise InvalidRequest(f"{what} holds an integer beyond 64 bits")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidRequest(f"{what} holds a number that is not finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(key, what)
            check_values(item, what)
    elif isinstance(value, list):
        for item in value:
            check_values(item, what)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    check_values(value, what)
    return value


def _unknown(body: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidRequest(f"unknown field {extra[0]!r} in {what} (fields: {', '.join(sorted(allowed))})")


def _string(body: dict[str, Any], name: str, limit: int, what: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidRequest(f"{what}: {name} must be a string of 1 to {limit} characters")
    return value


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = _numeric(body, name, integer=True)
    return None if value is None else int(value)


def _number(body: dict[str, Any], name: str) -> float | None:
    value = _numeric(body, name, integer=False)
    return None if value is None else float(value)


def _numeric(body: dict[str, Any], name: str, *, integer: bool) -> int | float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise InvalidRequest(f"{name} must be {'an integer' if integer else 'a number'}")
    number: int | float = value
    return number


def metadata_of(value: Any, what: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) and key for key in value):
        raise InvalidRequest(f"{what} must be a JSON object with non-empty string keys")
    check_values(value, what)
    return value


# -- collections --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCollection:
    name: str
    description: str | None = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    metadata: dict[str, Any] | None = None


def parse_collection(raw: Any) -> NewCollection:
    body = _object(raw, "the request body")
    _unknown(body, _COLLECTION_FIELDS, "a collection")
    name = _string(body, "name", 128, "a collection")
    if name is None:
        raise InvalidRequest("a collection needs a name (1 to 128 characters)")
    if name.strip() != name or "/" in name:
        raise InvalidRequest("a collection name has no leading or trailing spaces and no '/'")
    return NewCollection(
        name,
        _string(body, "description", 4096, "a collection"),
        _integer(body, "chunk_size"),
        _integer(body, "chunk_overlap"),
        metadata_of(body.get("metadata")),
    )


def collection_json(view: CollectionView, index: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "knowledge.collection",
        "id": view.id,
        "name": view.name,
        "description": view.description,
        "chunk_size": view.chunk_size,
        "chunk_overlap": view.chunk_overlap,
        "embedding_model": view.embedding_model,
        "dimensions": view.dimensions,
        "index_version": view.index_version,
        "metadata": view.metadata,
        "documents": view.documents,
        "chunks": view.chunks,
    }
    if index is not None:
        out["index"] = index
    return out


# -- documents ----------------------------------------------------------------------------------------


def document_input(raw: Any, where: str = "the document") -> DocumentInput:
    """One document of a JSON upload: ``{"id"|"uri", "text"|"content"|"content_base64", "format",
    "title", "metadata"}``. The format defaults to the uri's extension, else plain text."""
    body = _object(raw, where)
    _unknown(body, _DOCUMENT_FIELDS, where)
    sources = [name for name in ("text", "content", "content_base64") if body.get(name) is not None]
    if len(sources) != 1:
        raise InvalidRequest(f"{where} needs exactly one of text, content or content_base64")
    content: bytes | str = body[sources[0]]
    if not isinstance(content, str):
        raise InvalidRequest(f"{where}: {sources[0]} must be a string")
    if sources[0] == "content_base64":
        try:
            content = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{where}: content_base64 is not valid base64") from None
    return described_document(content, body, where)


def described_document(
    content: bytes | str, fields: dict[str, Any], where: str = "the document", filename: str | None = None
) -> DocumentInput:
    """``content`` with what ``fields`` say of it (``id``, ``uri``, ``title``, ``format``,
    ``metadata``): a JSON document, or a multipart upload's form fields and ``filename`` (the
    key when neither id nor uri is given; the format's hint)."""
    key = _string(fields, "id", MAX_KEY_CHARS, where)
    uri = _string(fields, "uri", MAX_URI_CHARS, where)
    if key is None and uri is None and filename:
        uri = _string({"file name": filename}, "file name", MAX_KEY_CHARS, where)
    if key is None and uri is None:
        raise InvalidRequest(f"{where} needs an id or a uri (what identifies it for re-ingestion and deletion)")
    if uri is not None and key is None and len(uri) > MAX_KEY_CHARS:
        raise InvalidRequest(f"{where}: a uri over {MAX_KEY_CHARS} characters needs an id too")
    if not content:
        raise InvalidRequest(f"{where} is empty")
    declared = _string(fields, "format", 64, where)
    if declared is not None:
        fmt = format_name(declared)
    elif isinstance(content, bytes):
        fmt = detect_format(None, filename or uri, head=content[:8])
    else:
        fmt = _format_of_uri(uri)
    metadata = fields.get("metadata")
    return DocumentInput(
        content,
        id=key,
        uri=uri,
        format=fmt,
        title=_string(fields, "title", 1024, where),
        metadata=metadata_of(metadata, f"{where}: metadata"),
    )


def _format_of_uri(uri: str | None) -> str:
    try:
        return detect_format(None, uri) if uri else "text"
    except InvalidRequest:
        return "text"


@dataclass(frozen=True, slots=True)
class Upload:
    documents: list[DocumentInput]
    #: The caller asked for a background job whatever the size.
    background: bool = False
    #: The body was one document (not a list): its refusal is the request's error.
    single: bool = True


def parse_documents(raw: Any, max_documents: int) -> Upload:
    """A JSON upload: one document, ``{"documents": [...], "background": bool}``, or a list."""
    background = False
    if isinstance(raw, dict) and "documents" in raw:
        _unknown(raw, frozenset({"documents", "background"}), "the request body")
        flag = raw.get("background", False)
        if not isinstance(flag, bool):
            raise InvalidRequest("background must be true or false")
        background = flag
        raw = raw["documents"]
        if not isinstance(raw, list):
            raise InvalidRequest("documents must be a list of documents")
    if isinstance(raw, list):
        if not raw:
            raise InvalidRequest("documents is empty")
        if len(raw) > max_documents:
            raise InvalidRequest(f"at most {max_documents} documents in one request")
        documents = [document_input(item, f"documents[{i}]") for i, item in enumerate(raw)]
        keys = [document.key for document in documents]
        if len(set(keys)) != len(keys):
            raise InvalidRequest("two documents of the request have the same id (or uri)")
        return Upload(documents, background, single=False)
    return Upload([document_input(raw)], background)


def document_size(document: DocumentInput) -> int:
    content = document.content
    return len(content.encode("utf-8")) if isinstance(content, str) else len(content)


def document_json(view: DocumentView) -> dict[str, Any]:
    """``id`` is the key the document was ingested under (its id, else its uri); ``document_id``
    the one the gateway gave it. Either finds it."""
    return {
        "object": "knowledge.document",
        "id": view.external_id,
        "document_id": view.id,
        "collection_id": view.collection_id,
        "uri": view.uri,
        "title": view.title,
        "format": view.format,
        "content_hash": view.content_hash,
        "version": view.version,
        "metadata": view.metadata,
        "chunks": view.chunks,
    }


def result_json(result: IngestResult) -> dict[str, Any]:
    return asdict(result)


def parse_filter(raw: Any) -> dict[str, Any]:
    """``{"filter": {...}}`` (or ``filters``) of a delete by metadata; never empty."""
    body = _object(raw, "the request body")
    _unknown(body, frozenset({"filter", "filters"}), "a delete by filter")
    value = body.get("filter", body.get("filters"))
    if not isinstance(value, dict) or not value:
        raise InvalidRequest('a delete by filter needs a non-empty filter object, e.g. {"filter": {"source": "x"}}')
    return value


# -- search -------------------------------------------------------------------------------------------


def parse_search(raw: Any, fetch_k: int, default_rrf_k: int) -> SearchRequest:
    """``{"query", "collections" (or "collection"), "k", "mode", "filters", "fetch_k", "fusion",
    "rrf_k", "weights": [bm25, dense], "mmr_lambda" (or "mmr": {"lambda", "fetch_k"}), "threshold"}``."""
    body = _object(raw, "the request body")
    _unknown(body, _SEARCH_FIELDS, "a search")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("query must be a non-empty string")
    collections = body.get("collections")
    if collections is None and body.get("collection") is not None:
        collections = [body["collection"]]
    if not isinstance(collections, list) or not collections or not all(isinstance(c, str) and c for c in collections):
        raise InvalidRequest("collections must be a non-empty list of collection names or ids")
    mode = body.get("mode", "hybrid")
    if mode not in ("bm25", "dense", "hybrid"):
        raise InvalidRequest("mode is bm25, dense or hybrid")
    fusion = body.get("fusion", "rrf")
    if fusion not in ("rrf", "linear"):
        raise InvalidRequest("fusion is rrf or linear")
    filters = body.get("filters")
    if filters is not None and not isinstance(filters, dict):
        raise InvalidRequest("filters must be a JSON object")
    weights_raw = body.get("weights", [1.0, 1.0])
    if (
        not isinstance(weights_raw, list)
        or len(weights_raw) != 2
        or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights_raw)
    ):
        raise InvalidRequest("weights are two numbers: [bm25, dense]")
    rrf_k = _integer(body, "rrf_k")
    if rrf_k is not None and rrf_k < 1:
        raise InvalidRequest("rrf_k must be at least 1")
    mmr_lambda = _number(body, "mmr_lambda")
    fetch = _integer(body, "fetch_k")
    mmr = body.get("mmr")
    if mmr is not None:
        mmr = _object(mmr, "mmr")
        _unknown(mmr, frozenset({"lambda", "fetch_k"}), "mmr")
        mmr_lambda = _number(mmr, "lambda") if mmr.get("lambda") is not None else 0.5
        fetch = _integer(mmr, "fetch_k") or fetch
    threshold = _number(body, "threshold")
    k = _integer(body, "k")
    return SearchRequest(
        query,
        list(collections),
        k=10 if k is None else k,
        mode=cast(Mode, mode),
        filters=filters or None,
        fetch_k=fetch_k if fetch is None else fetch,
        fusion=fusion,
        rrf_k=rrf_k if rrf_k is not None else default_rrf_k,
        weights=(float(weights_raw[0]), float(weights_raw[1])),
        mmr_lambda=mmr_lambda,
        threshold=threshold,
    )


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": hit.score,
        "text": hit.text,
        "title": hit.title,
        "metadata": hit.metadata,
        "provenance": hit.provenance(),
    }
