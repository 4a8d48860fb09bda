"""Bulk on agent sessions (seed 000): ``POST /api/v1/ai/batch`` and
``GET /api/v1/ai/batch/{batch_id}/status``.

Authenticated like the session API (API key or JWT, ``models:call``); a bulk is visible to the
owner of its session only (404 otherwise, as for an unknown id). Submitting answers 202 at once:
the items run in the background as a job of kind ``bulk``. See docs/BULK.md.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.api.common import authenticate_request, gateway, request_id
from bastion.api.http import json_response, read_json
from bastion.api.sessions import PREFIX, route
from bastion.auth.principal import Permission, Principal
from bastion.bulk.service import BulkService


async def _caller(request: Request) -> tuple[Principal, BulkService]:
    principal = await authenticate_request(request, Permission.CALL_MODELS)
    services = gateway(request).services
    return principal, BulkService(services.jobs, services.sessions, services.settings.bulk)


@route
async def submit(request: Request) -> Response:
    principal, service = await _caller(request)
    body = await read_json(request, gateway(request).settings.server.max_body_bytes)
    view = await service.submit(principal, body, request_id(request))
    return json_response(view, status=202, headers={"location": f"{PREFIX}/batch/{view['id']}/status"})


@route
async def status(request: Request) -> Response:
    principal, service = await _caller(request)
    return json_response(await service.status(principal, request.path_params["batch_id"]))


routes = [
    Route(f"{PREFIX}/batch", submit, methods=["POST"]),
    Route(f"{PREFIX}/batch/{{batch_id}}/status", status, methods=["GET"]),
]
