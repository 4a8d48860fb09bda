"""OpenAI Files API: ``/v1/files`` (upload, list), ``/v1/files/{file_id}`` (retrieve, delete) and
``/v1/files/{file_id}/content``, so the unmodified ``openai`` SDK works (docs/FILES.md).

Uploads stream: the file part is written to a temporary file as it arrives and the size limit
(``files.max_bytes``, 200 MB) is enforced on the way (413 as soon as it is passed); the file
service then checks it for its purpose and moves it into place (``bastion/files/service.py``).
Every route needs ``models:call`` and sees only the caller's files (the tenant's, for its admins).
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import file_chunks, json_response
from bastion.api.multipart import Sink, read_upload
from bastion.auth.principal import Permission, Principal
from bastion.errors import InvalidRequest, PayloadTooLarge
from bastion.files.service import MAX_LIST, FileService, check_purpose, expiry_seconds
from bastion.files.storage import PendingUpload

#: What a multipart body may add to the file itself (boundaries, part headers, the form fields).
FORM_OVERHEAD_BYTES: Final = 1024 * 1024
CONTENT_CHUNK: Final = 256 * 1024


def _files(request: Request) -> FileService:
    return gateway(request).services.files


async def _caller(request: Request) -> Principal:
    return await authenticate_request(request, Permission.CALL_MODELS)


async def create_file(request: Request) -> Response:
    principal = await _caller(request)
    service = _files(request)
    max_body = service.max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge(
            f"File is larger than the {service.max_bytes:,}-byte limit.", param="file", code="file_too_large"
        )
    upload: PendingUpload | None = None

    def open_sink(fields: dict[str, str]) -> Sink:
        nonlocal upload
        if "purpose" in fields:  # sent before the file, as the SDKs do: refuse before reading it
            check_purpose(fields["purpose"])
        upload = service.begin_upload()
        return upload

    try:
        form = await read_upload(request, open_sink, max_body)
        if upload is None:
            raise InvalidRequest("Invalid request: file is required (a multipart file part named file).", param="file")
        fields = form.fields
        created = await service.create(
            principal,
            upload,
            filename=form.filename,
            purpose=fields.get("purpose"),
            expires_after_s=expiry_seconds(fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")),
        )
    finally:
        if upload is not None:
            await asyncio.to_thread(upload.discard)
    return json_response(created)


async def list_files(request: Request) -> Response:
    principal = await _caller(request)
    order = request.query_params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid request: order must be asc or desc.", param="order")
    listing = await _files(request).list_files(
        principal,
        purpose=request.query_params.get("purpose") or None,
        limit=query_int(request, "limit", MAX_LIST, 1, MAX_LIST),
        after=request.query_params.get("after") or None,
        order=order,
    )
    return json_response(listing)


async def retrieve_file(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _files(request).retrieve(principal, request.path_params["file_id"]))


async def delete_file(request: Request) -> Response:
    principal = await _caller(request)
    return json_response(await _files(request).delete(principal, request.path_params["file_id"]))


async def file_content(request: Request) -> Response:
    principal = await _caller(request)
    info, handle = await _files(request).open_content(principal, request.path_params["file_id"])
    headers = {
        "content-length": str(info["bytes"]),
        "content-disposition": f"attachment; filename*=UTF-8''{quote(info['filename'], safe='')}",
    }
    return StreamingResponse(file_chunks(handle), media_type="application/octet-stream", headers=headers)


routes = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
