"""OpenAI Batch API: ``/v1/batches`` (create, list), ``/v1/batches/{batch_id}`` (retrieve) and
``/v1/batches/{batch_id}/cancel``, so the unmodified ``openai`` SDK works (docs/BATCHES.md).

Every route needs ``models:call`` and sees only the caller's batches (the tenant's, for its
admins). Creating a batch stores it and queues its job; the lines run in the workers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, query_int
from bastion.api.http import json_response, page_body, read_json
from bastion.auth.principal import Permission, Principal
from bastion.batches.formats import openai_batch
from bastion.batches.service import BatchService

MAX_LIST = 100


def _batches(request: Request) -> BatchService:
    return gateway(request).services.batches


async def _caller(request: Request) -> Principal:
    return await authenticate_request(request, Permission.CALL_MODELS)


async def create_batch(request: Request) -> Response:
    principal = await _caller(request)
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    view = await _batches(request).create_openai(principal, body)
    return json_response(openai_batch(view))


async def retrieve_batch(request: Request) -> Response:
    principal = await _caller(request)
    view = await _batches(request).get(principal, "openai", request.path_params["batch_id"])
    return json_response(openai_batch(view))


async def cancel_batch(request: Request) -> Response:
    principal = await _caller(request)
    view = await _batches(request).cancel(principal, "openai", request.path_params["batch_id"])
    return json_response(openai_batch(view))


async def list_batches(request: Request) -> Response:
    """Newest first; ``limit`` (1-100, default 20) and ``after`` (a batch id), as OpenAI's."""
    principal = await _caller(request)
    views, more = await _batches(request).page(
        principal,
        "openai",
        query_int(request, "limit", 20, 1, MAX_LIST),
        after=request.query_params.get("after") or None,
    )
    return json_response({"object": "list", **page_body([openai_batch(view) for view in views], more)})


routes = [
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]
