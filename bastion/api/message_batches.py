"""Anthropic Message Batches API: ``/v1/messages/batches`` (create, list), ``.../{id}``
(retrieve, delete), ``.../{id}/cancel`` and ``.../{id}/results`` (JSONL), so the unmodified
``anthropic`` SDK works (docs/BATCHES.md). Errors are in Anthropic's shape (the path says so).

A message batch's requests are kept as a file of its creator's; its results are a JSONL file
written when it ends, served here (the SDK follows ``results_url``).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import file_chunks, json_response, page_body, read_json
from bastion.auth.principal import Permission, Principal
from bastion.batches.formats import anthropic_batch
from bastion.batches.model import ANTHROPIC_MAX_BYTES, BatchView
from bastion.batches.service import BatchService

MAX_LIST: Final = 1000
CONTENT_CHUNK: Final = 256 * 1024


def _batches(request: Request) -> BatchService:
    return gateway(request).services.batches


async def _caller(request: Request) -> Principal:
    return await authenticate_request(request, Permission.CALL_MODELS)


def _shown(request: Request, view: BatchView) -> dict[str, object]:
    results_url = str(request.url_for("message_batch_results", batch_id=view.id))
    return anthropic_batch(view, results_url)


async def create_message_batch(request: Request) -> Response:
    principal = await _caller(request)
    body = await read_json(request, ANTHROPIC_MAX_BYTES)
    view = await _batches(request).create_anthropic(principal, body)
    return json_response(_shown(request, view))


async def retrieve_message_batch(request: Request) -> Response:
    principal = await _caller(request)
    view = await _batches(request).get(principal, "anthropic", request.path_params["batch_id"])
    return json_response(_shown(request, view))


async def cancel_message_batch(request: Request) -> Response:
    principal = await _caller(request)
    view = await _batches(request).cancel(principal, "anthropic", request.path_params["batch_id"])
    return json_response(_shown(request, view))


async def delete_message_batch(request: Request) -> Response:
    principal = await _caller(request)
    view = await _batches(request).delete(principal, "anthropic", request.path_params["batch_id"])
    return json_response({"id": view.id, "type": "message_batch_deleted"})


async def list_message_batches(request: Request) -> Response:
    """Newest first; ``limit`` (1-1000, default 20), ``after_id`` / ``before_id``, as Anthropic's."""
    principal = await _caller(request)
    views, more = await _batches(request).page(
        principal,
        "anthropic",
        query_int(request, "limit", 20, 1, MAX_LIST),
        after=request.query_params.get("after_id") or None,
        before=request.query_params.get("before_id") or None,
    )
    return json_response(page_body([_shown(request, view) for view in views], more))


async def message_batch_results(request: Request) -> Response:
    principal = await _caller(request)
    handle = await _batches(request).open_results(principal, request.path_params["batch_id"])
    return StreamingResponse(file_chunks(handle), media_type="application/x-jsonl")


routes = [
    Route("/v1/messages/batches", create_message_batch, methods=["POST"]),
    Route("/v1/messages/batches", list_message_batches, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", retrieve_message_batch, methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", delete_message_batch, methods=["DELETE"]),
    Route("/v1/messages/batches/{batch_id}/cancel", cancel_message_batch, methods=["POST"]),
    Route(
        "/v1/messages/batches/{batch_id}/results", message_batch_results, methods=["GET"], name="message_batch_results"
    ),
]
