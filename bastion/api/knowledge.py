"""Knowledge API: collections, documents, ingestion jobs and retrieval under ``/v1/knowledge``
(docs/KNOWLEDGE.md, "API").

Writes (create and delete collections, ingest and delete documents, ingestion jobs) need
``knowledge:write`` (admin, developer); reads and ``POST /v1/knowledge/search`` need
``models:call`` (admin, developer, service: what may call a model may retrieve for it). Every
route is scoped to the caller's tenant: another tenant's collection, document or job is a 404.

Uploads (JSON, or multipart with a ``file`` part) of at most ``knowledge.sync_ingest_bytes`` and
``knowledge.sync_ingest_documents`` are ingested while the request waits (200 with each
document's outcome); larger ones, or ``background: true``, become a ``knowledge_ingest`` job
(202 with its id; ``GET /v1/knowledge/jobs/{id}`` shows progress and each document's outcome,
``POST .../cancel`` stops it between groups).
"""

from __future__ import annotations

import io
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import json_response, page_body, read_json
from bastion.api.multipart import Sink, read_upload
from bastion.auth.principal import Permission, Principal
from bastion.config.work_settings import KnowledgeSettings
from bastion.errors import BastionError, InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from bastion.jobs.model import job_json
from bastion.knowledge.extract import detect_format
from bastion.knowledge.ingest_job import JOB_KIND, submit_ingest
from bastion.knowledge.model import IngestResult
from bastion.knowledge.service import KnowledgeService
from bastion.knowledge.wire import (
    Upload,
    check_values,
    collection_json,
    described_document,
    document_json,
    document_size,
    hit_json,
    parse_collection,
    parse_documents,
    parse_filter,
    parse_search,
    result_json,
)

PREFIX: Final = "/v1/knowledge"
COLLECTION: Final = PREFIX + "/collections/{collection}"
MAX_DOCUMENTS_PAGE: Final = 1000
#: Documents one request may submit (a job beyond the synchronous limits).
MAX_DOCUMENTS_REQUEST: Final = 10_000
#: What a body may add to its documents (JSON syntax, base64's third, multipart framing).
BODY_OVERHEAD: Final = 1024 * 1024
_FORM_FIELDS: Final = frozenset({"id", "uri", "title", "format", "metadata", "background"})


def _service(request: Request) -> KnowledgeService:
    service = gateway(request).services.knowledge
    if service is None:
        raise NotFound("Knowledge collections are not enabled on this gateway.")
    return service


async def _writer(request: Request) -> Principal:
    return await authenticate_request(request, Permission.WRITE_KNOWLEDGE)


async def _reader(request: Request) -> Principal:
    return await authenticate_request(request, Permission.CALL_MODELS)


def _settings(request: Request) -> KnowledgeSettings:
    return gateway(request).settings.knowledge


def _path(request: Request, name: str) -> str:
    """A path parameter; one no database could hold (a NUL) names nothing: 404."""
    value: str = request.path_params[name]
    if "\x00" in value:
        raise NotFound(f"No {name} {value[:64]!r}.")
    return value


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None:
        check_values(value, f"Invalid request: {name}")
    return value


async def _json_body(request: Request, max_bytes: int | None = None) -> Any:
    limit = max_bytes if max_bytes is not None else gateway(request).settings.server.max_body_bytes
    return await read_json(request, limit)


# -- collections --------------------------------------------------------------------------------------


async def create_collection(request: Request) -> Response:
    principal = await _writer(request)
    spec = parse_collection(await _json_body(request))
    view = await _service(request).create_collection(
        principal.tenant_id,
        spec.name,
        description=spec.description,
        chunk_size=spec.chunk_size,
        chunk_overlap=spec.chunk_overlap,
        metadata=spec.metadata,
    )
    return json_response(collection_json(view), status=201)


async def list_collections(request: Request) -> Response:
    principal = await _reader(request)
    views = await _service(request).list_collections(principal.tenant_id)
    return json_response({"object": "list", **page_body([collection_json(view) for view in views], False)})


async def get_collection(request: Request) -> Response:
    principal = await _reader(request)
    service, ref = _service(request), _path(request, "collection")
    view = await service.get_collection(principal.tenant_id, ref)
    counts = await service.index_counts(principal.tenant_id, view.id)
    return json_response(collection_json(view, counts))


async def delete_collection(request: Request) -> Response:
    principal = await _writer(request)
    service, ref = _service(request), _path(request, "collection")
    view = await service.get_collection(principal.tenant_id, ref)
    await service.delete_collection(principal.tenant_id, view.id)
    return json_response({"object": "knowledge.collection.deleted", "id": view.id, "name": view.name, "deleted": True})


# -- documents ----------------------------------------------------------------------------------------


class _Buffer:
    """The uploaded file, in memory, refused (413) as soon as it passes the document limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = io.BytesIO()

    def write(self, data: bytes) -> None:
        if self.data.tell() + len(data) > self.limit:
            raise PayloadTooLarge(f"The document is larger than the {self.limit:,}-byte limit.", param="file")
        self.data.write(data)


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"Invalid request: {name} must be true or false.", param=name)


async def _multipart_upload(request: Request, settings: KnowledgeSettings) -> Upload:
    """``file`` (the document) with optional fields ``id``, ``uri``, ``title``, ``format`` and
    ``metadata`` (a JSON object). The file name identifies the document when neither is given."""
    buffer = _Buffer(settings.max_document_bytes)

    def open_sink(fields: dict[str, str]) -> Sink:
        return buffer

    form = await read_upload(request, open_sink, settings.max_document_bytes + BODY_OVERHEAD)
    if not form.has_file:
        raise InvalidRequest("Invalid request: file is required (a multipart file part named file).", param="file")
    fields = form.fields
    check_values([form.filename or "", form.content_type or "", fields], "Invalid request: the form")
    unknown = sorted(set(fields) - _FORM_FIELDS)
    if unknown:
        raise InvalidRequest(f"Invalid request: unknown form field {unknown[0][:64]!r}.", param=unknown[0][:64])
    content = buffer.data.getvalue()
    described: dict[str, Any] = {name: value for name, value in fields.items() if name != "background" and value}
    # The format: the field, else the file name, else the part's content type, else the bytes.
    described["format"] = detect_format(fields.get("format"), form.filename, form.content_type, content[:8])
    if "metadata" in described:
        try:
            described["metadata"] = orjson.loads(described["metadata"])
        except orjson.JSONDecodeError:
            raise InvalidRequest("Invalid request: metadata must be a JSON object.", param="metadata") from None
    document = described_document(content, described, "the uploaded file", form.filename)
    return Upload([document], _flag(fields.get("background"), "background"))


def _refusal(result: IngestResult) -> BastionError:
    """The error a one-document request answers with when its document was refused."""
    message = result.error or "the document was refused"
    if result.error_code == "request_too_large":
        return PayloadTooLarge(message)
    if result.error_code == "unsupported_format":
        return UnsupportedMediaType(message)
    return InvalidRequest(message, code=result.error_code or "invalid_request")


async def ingest_documents(request: Request) -> Response:
    principal = await _writer(request)
    service, settings = _service(request), _settings(request)
    ref = _path(request, "collection")
    collection = await service.get_collection(principal.tenant_id, ref)  # 404 before reading the body
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        upload = await _multipart_upload(request, settings)
    elif media in ("application/json", ""):
        body_limit = max(gateway(request).settings.server.max_body_bytes, settings.max_document_bytes * 4 // 3)
        upload = parse_documents(await _json_body(request, body_limit + BODY_OVERHEAD), MAX_DOCUMENTS_REQUEST)
    else:
        raise UnsupportedMediaType(
            f"Unsupported content type {media[:64]!r}: send application/json or multipart/form-data."
        )
    sizes = [document_size(document) for document in upload.documents]
    for document, size in zip(upload.documents, sizes, strict=True):
        if size > settings.max_document_bytes:
            raise PayloadTooLarge(
                f"Document {document.key!r} is larger than the {settings.max_document_bytes:,}-byte limit."
            )
    background = (
        upload.background
        or sum(sizes) > settings.sync_ingest_bytes
        or len(upload.documents) > settings.sync_ingest_documents
    )
    if background:
        job_id = await submit_ingest(
            gateway(request).services.jobs,
            principal.tenant_id,
            collection.id,
            upload.documents,
            key_id=principal.key_id,
            user_id=principal.user_id,
        )
        return json_response(
            {
                "object": "knowledge.ingest_job",
                "id": job_id,
                "collection_id": collection.id,
                "state": "queued",
                "documents": len(upload.documents),
                "status_url": f"{PREFIX}/jobs/{job_id}",
            },
            status=202,
        )
    results = await service.ingest(principal.tenant_id, collection.id, upload.documents)
    if upload.single and results[0].status == "error":
        raise _refusal(results[0])
    return json_response(
        {
            "object": "knowledge.ingest",
            "collection_id": collection.id,
            "results": [result_json(result) for result in results],
        }
    )


async def list_documents(request: Request) -> Response:
    """Ordered by key; ``limit`` (1-1000, default 100) and ``after`` (the previous page's ``last_id``)."""
    principal = await _reader(request)
    limit = query_int(request, "limit", 100, 1, MAX_DOCUMENTS_PAGE)
    views = await _service(request).list_documents(
        principal.tenant_id,
        _path(request, "collection"),
        limit=limit + 1,
        after=_query(request, "after"),
    )
    data = [document_json(view) for view in views[:limit]]
    return json_response({"object": "list", **page_body(data, len(views) > limit)})


async def get_document(request: Request) -> Response:
    principal = await _reader(request)
    view = await _service(request).get_document(
        principal.tenant_id, _path(request, "collection"), _path(request, "document")
    )
    return json_response(document_json(view))


async def delete_document(request: Request) -> Response:
    principal = await _writer(request)
    service = _service(request)
    collection, key = _path(request, "collection"), _path(request, "document")
    view = await service.get_document(principal.tenant_id, collection, key)
    await service.delete_document(principal.tenant_id, collection, view.id)
    return json_response({"object": "knowledge.document.deleted", "id": view.external_id, "deleted": True})


async def delete_by_filter(request: Request) -> Response:
    principal = await _writer(request)
    filters = parse_filter(await _json_body(request))
    count = await _service(request).delete_documents(principal.tenant_id, _path(request, "collection"), filters)
    return json_response({"object": "knowledge.documents.deleted", "deleted": count, "filter": filters})


# -- ingestion jobs -----------------------------------------------------------------------------------


async def _ingest_job(request: Request, principal: Principal) -> str:
    """The job id, if it is a knowledge ingestion of the caller's tenant (404 otherwise)."""
    job_id = _path(request, "job_id")
    if len(job_id) > 64:
        raise NotFound(f"No ingestion job {job_id[:64]!r}.")
    job = await gateway(request).services.jobs.get(job_id, principal.tenant_id)
    if job.kind != JOB_KIND:
        raise NotFound(f"No ingestion job {job_id!r}.")
    return job_id


async def _job_answer(request: Request, job_id: str, tenant_id: str) -> Response:
    jobs = gateway(request).services.jobs
    job = await jobs.get(job_id, tenant_id)
    out = job_json(job, payload=False)
    for private in ("lease", "tenant_id", "result_ref"):
        out.pop(private, None)
    out["object"] = "knowledge.ingest_job"
    out["documents"] = [
        {"item": item.key, "status": item.status, "result": item.result, "error": item.error}
        for item in await jobs.items(job_id, limit=MAX_DOCUMENTS_PAGE, after=_query(request, "after"))
    ]
    return json_response(out)


async def get_ingest_job(request: Request) -> Response:
    """The job's state and progress, and each finished document's outcome (1000 at a time:
    ``after`` = the last ``item`` seen)."""
    principal = await _writer(request)
    return await _job_answer(request, await _ingest_job(request, principal), principal.tenant_id)


async def cancel_ingest_job(request: Request) -> Response:
    principal = await _writer(request)
    job_id = await _ingest_job(request, principal)
    await gateway(request).services.jobs.cancel(job_id, principal.tenant_id)
    return await _job_answer(request, job_id, principal.tenant_id)


# -- search -------------------------------------------------------------------------------------------


async def search(request: Request) -> Response:
    principal = await _reader(request)
    settings = _settings(request)
    query = parse_search(await _json_body(request), settings.fetch_k, settings.rrf_k)
    hits = await _service(request).search(principal.tenant_id, query)
    return json_response(
        {"object": "list", "query": query.query, "mode": query.mode, "data": [hit_json(h) for h in hits]}
    )


routes = [
    Route(PREFIX + "/collections", create_collection, methods=["POST"]),
    Route(PREFIX + "/collections", list_collections, methods=["GET"]),
    Route(COLLECTION, get_collection, methods=["GET"]),
    Route(COLLECTION, delete_collection, methods=["DELETE"]),
    Route(COLLECTION + "/documents", ingest_documents, methods=["POST"]),
    Route(COLLECTION + "/documents", list_documents, methods=["GET"]),
    Route(COLLECTION + "/documents/delete", delete_by_filter, methods=["POST"]),
    Route(COLLECTION + "/documents/{document:path}", get_document, methods=["GET"]),
    Route(COLLECTION + "/documents/{document:path}", delete_document, methods=["DELETE"]),
    Route(PREFIX + "/jobs/{job_id}", get_ingest_job, methods=["GET"]),
    Route(PREFIX + "/jobs/{job_id}/cancel", cancel_ingest_job, methods=["POST"]),
    Route(PREFIX + "/search", search, methods=["POST"]),
]
